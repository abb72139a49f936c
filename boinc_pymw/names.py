"""The names BOINC objects may have, defined once: workunits, files, apps,
batches, plan classes.

Every name ends up in two places that each have a limit: a database column
(``varchar(254)`` in server 1.4.7, ``varchar(191)`` for ``name`` columns in
1.6) and a file-system path component (255 *bytes* on Linux, whatever the
characters). A name that passes here fits both, with room for what BOINC
and boinc-pymw append to it:

* a workunit's results are ``<wu>_<n>``, their output files
  ``<wu>_<n>_<i>``, the results store keeps ``<wu>.json`` beside a ``<wu>/``
  directory, and the download hierarchy ``<file>.md5`` beside ``<file>``;
* BOINC's upload handler refuses names with control characters or ``..``
  anywhere (lib/str_util.cpp ``is_valid_filename``), so every output file
  of a workunit with such a name would fail to upload;
* BOINC's XML parser does not unescape, so ``<``, ``>`` and ``&`` cannot
  travel in templates or ``xml_doc``.

Every check raises :class:`BadName` (a ValueError) naming the rule broken.
"""

from __future__ import annotations

import re
import unicodedata

from .errors import BoincPymwError

#: Longest path component Linux file systems store (ext4, xfs, btrfs, tmpfs).
PATH_COMPONENT_BYTES = 255

#: Input/output file names: room for ".gz.md5" and a temporary suffix of 8 bytes.
FILE_NAME_BYTES = 240
#: Workunit names: results add "_<n>" (up to 11 characters), output files "_<i>",
#: the results store ".json"; 180 characters fit 1.6's varchar(191) after "_<n>".
WORKUNIT_NAME_BYTES = 230
WORKUNIT_NAME_CHARS = 180
#: Batch names prefix workunit names "<batch>_<n>" (n up to 10 digits).
BATCH_NAME_BYTES = WORKUNIT_NAME_BYTES - 11
BATCH_NAME_CHARS = WORKUNIT_NAME_CHARS - 11
#: App names: templates/<app>_out must fit workunit.result_template_file, varchar(63).
APP_NAME_CHARS = 49
#: Plan classes: app_version.plan_class (varchar(128) in 1.6) and PLATFORM__NAME dirs.
PLAN_CLASS_CHARS = 64

_ASCII_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")
_XML_SPECIAL = "<>&"


class BadName(BoincPymwError, ValueError):
    """A name BOINC, its database or the file system would refuse or mangle."""


def _is_control(ch: str) -> bool:
    """C0/C1 controls (newline, tab, escape, ...) and Unicode line/paragraph separators."""
    return unicodedata.category(ch) in ("Cc", "Zl", "Zp")


#: Names made of these characters (no "..") pass at once: create_batch checks
#: two names per workunit, thousands of times a second.
_PLAIN_ASCII = re.compile(r"(?!.*\.\.)[A-Za-z0-9_.+=,@%~-]+")


def check_plain_name(what: str, name, *, max_bytes: int, max_chars: int | None = None) -> str:
    """The rules every name shares; returns ``name``."""
    if (type(name) is str and len(name) <= max_bytes and name != "."
            and (max_chars is None or len(name) <= max_chars) and _PLAIN_ASCII.fullmatch(name)):
        return name
    if not isinstance(name, str):
        raise BadName(f"{what} must be a string, not {type(name).__name__}")
    shown = repr(name if len(name) <= 60 else name[:40] + "...")
    if not name:
        raise BadName(f"{what} is empty")
    bad = [] if name.isascii() and name.isprintable() else [ch for ch in name if _is_control(ch)]
    if bad:
        raise BadName(f"{what} {shown} contains the control character {bad[0]!r} "
                      f"(newlines, tabs and other control characters are not allowed)")
    if "/" in name or "\\" in name or name in (".", ".."):
        raise BadName(f"{what} {shown} is not a plain file name (no '/' or '\\', not '.' or '..')")
    if ".." in name:
        raise BadName(f"{what} {shown} contains '..', which BOINC's upload handler refuses")
    special = sorted(set(_XML_SPECIAL) & set(name))
    if special:
        raise BadName(f"{what} {shown} contains {''.join(special)!r}; BOINC's XML cannot carry "
                      f"<, > or &")
    if name != name.strip():
        raise BadName(f"{what} {shown} has leading or trailing white space")
    try:
        nbytes = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        raise BadName(f"{what} {shown} is not valid Unicode text (lone surrogate)") from None
    if nbytes > max_bytes:
        raise BadName(f"{what} {shown} is {nbytes} bytes in UTF-8; at most {max_bytes} are "
                      f"allowed (a file name holds {PATH_COMPONENT_BYTES} bytes, and BOINC "
                      f"appends suffixes to it)")
    if max_chars is not None and len(name) > max_chars:
        raise BadName(f"{what} {shown} is {len(name)} characters long; at most {max_chars} "
                      f"are allowed (BOINC's name columns, with room for result suffixes)")
    return name


def check_file_name(what: str, name) -> str:
    """An input or output file name (physical or logical)."""
    return check_plain_name(what, name, max_bytes=FILE_NAME_BYTES)


def check_workunit_name(name, what: str = "workunit name") -> str:
    """A workunit name: also the results store's record ``<name>.json`` and
    directory ``<name>/``, so it cannot start with '.' or end in '.json'."""
    check_plain_name(what, name, max_bytes=WORKUNIT_NAME_BYTES, max_chars=WORKUNIT_NAME_CHARS)
    _check_store_safe(what, name)
    return name


def check_batch_name(name, what: str = "batch name") -> str:
    """A batch name: a results store directory and the prefix of its workunits' names."""
    check_plain_name(what, name, max_bytes=BATCH_NAME_BYTES, max_chars=BATCH_NAME_CHARS)
    _check_store_safe(what, name)
    return name


def _check_store_safe(what: str, name: str) -> None:
    if name.startswith("."):
        raise BadName(f"{what} {name!r} starts with '.' (hidden and temporary files do)")
    if name.lower().endswith(".json"):
        raise BadName(f"{what} {name!r} ends in '.json': the results store keeps "
                      f"'<name>.json' records beside '<name>/' directories")


def check_ascii_name(what: str, name, max_chars: int) -> str:
    """Letters, digits, '_', '.', '-' (first a letter or digit): app and plan class names,
    which become parts of file names on every volunteer's machine."""
    if (not isinstance(name, str) or not _ASCII_NAME.fullmatch(name) or ".." in name
            or "__" in name):
        raise BadName(f"{what} {name!r}: use ASCII letters, digits, '_', '.' and '-', "
                      f"starting with a letter or digit (no '..' or '__')")
    if len(name) > max_chars:
        raise BadName(f"{what} {name!r} is {len(name)} characters long; at most {max_chars}")
    return name


def check_app_name(name) -> str:
    return check_ascii_name("app name", name, APP_NAME_CHARS)


def check_plan_class(name) -> str:
    return check_ascii_name("plan class", name, PLAN_CLASS_CHARS)
