"""A task's exception as a record that is the same on every volunteer's machine.

BOINC sends replicas of one workunit to different hosts and the validators
compare their output files (bitwise, or numbers within a tolerance and
strings exactly). A raw ``traceback.format_exception`` differs between hosts:
its file names are absolute (the BOINC data directory, the slot, where the
runtime and the app version's code were unpacked) and a repr such as
``<Foo object at 0x7f3a...>`` carries a memory address. So::

    error_record(exc, skip_frames=1) -> {"type", "message", "traceback"}

* every frame's file name is relative to the ``sys.path`` entry it was
  imported from (``File "monte_pi.py", line 12, in count_hits``,
  ``File "json/decoder.py", ...``), or to the working directory (the slot),
  with ``/`` as separator; an absolute file outside all of them keeps its
  base name only;
* in the message and the whole text, those directories are replaced the same
  way (``<cwd>/data.txt`` -> ``data.txt``; the directory itself -> ``.`` for
  the working directory, its base name otherwise), and ``at 0x<hex>>`` (a
  default repr) becomes ``at 0x...>``;
* the worker's own frame (``skip_frames``) is left out.

Source lines, carets, chained exceptions and notes are kept, so the record
stays what a human wants to read. What the task itself puts into its message
(a host name, a time, a random number) is the task's business.
"""

from __future__ import annotations

import os
import re
import sys
import traceback

_ADDRESS = re.compile(r"(\bat 0x)[0-9a-fA-F]+(?=>)")
# Characters around a path in a message: whitespace, quotes, brackets, "=", ",", ";", ":".
_DELIMITERS = r"\s'\"<>()\[\]{}=,;:"


def type_name(exc: BaseException) -> str:
    cls = type(exc)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def _norm(path: str) -> str:
    return os.path.normcase(path)


def _separators() -> str:
    return os.sep + (os.altsep or "")


class PathScrubber:
    """Maps machine-specific paths to their machine-independent forms."""

    def __init__(self, cwd: str | None = None, path_entries=None):
        cwd = os.getcwd() if cwd is None else cwd
        entries = sys.path if path_entries is None else path_entries
        roots: dict[str, str] = {}  # normalised root -> what the root itself becomes
        for entry in entries:
            if not isinstance(entry, str) or not entry:
                continue
            for form in {entry, os.path.abspath(entry)}:
                form = form.rstrip(_separators()) or form
                if self._usable_root(form):
                    roots.setdefault(form, os.path.basename(form))
        cwd_form = cwd.rstrip(_separators()) or cwd
        if self._usable_root(cwd_form):
            roots[cwd_form] = "."
        # Longest first, so a code directory inside the slot wins over the slot.
        self.roots = sorted(roots.items(), key=lambda item: len(item[0]), reverse=True)
        seps = "".join(re.escape(s) for s in _separators())
        flags = re.IGNORECASE if _norm("A") == _norm("a") else 0
        # A root counts where a path can start and end: after/before a delimiter or
        # the end of the text, or followed by a separator (then the rest is relative).
        self._text_patterns = [
            (re.compile(f"(?<![^{_DELIMITERS}]){re.escape(root)}(?:[{seps}]|(?![^{_DELIMITERS}]))",
                        flags), label)
            for root, label in self.roots]

    @staticmethod
    def _usable_root(path: str) -> bool:
        # A file system root ("/", "C:\\") would make every path "relative".
        return os.path.isabs(path) and os.path.dirname(path) != path

    def filename(self, filename: str | None) -> str | None:
        """A frame's file name: relative to its sys.path entry or the cwd, with "/"."""
        if not filename or not os.path.isabs(filename):
            return filename
        normalised = _norm(filename)
        for root, _label in self.roots:
            prefix = _norm(root)
            if normalised.startswith(prefix) and len(filename) > len(root) \
                    and filename[len(root)] in _separators():
                return _slashes(filename[len(root) + 1:])
        return os.path.basename(filename)

    def text(self, text: str) -> str:
        """`text` with the roots made relative and memory addresses blanked."""
        for pattern, label in self._text_patterns:
            text = pattern.sub(lambda m, label=label: "" if m.group(0)[-1] in _separators()
                               else label, text)
        return _ADDRESS.sub(r"\g<1>...", text)


def _slashes(path: str) -> str:
    for sep in _separators():
        if sep != "/":
            path = path.replace(sep, "/")
    return path


def _relabel(te: traceback.TracebackException, scrubber: PathScrubber, seen: set) -> None:
    if id(te) in seen:
        return
    seen.add(id(te))
    for frame in te.stack:
        # The source lines were read when the exception was captured, from the real file.
        frame.filename = scrubber.filename(frame.filename)
    if getattr(te, "filename", None):  # only a SyntaxError's has one
        te.filename = scrubber.filename(te.filename)
    for linked in (te.__cause__, te.__context__, *(getattr(te, "exceptions", None) or ())):
        if linked is not None:
            _relabel(linked, scrubber, seen)


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:
        return f"<exception str() failed: {type(exc).__name__}>"


def error_record(exc: BaseException, skip_frames: int = 0,
                 scrubber: PathScrubber | None = None) -> dict:
    """{"type", "message", "traceback"} for `exc`, identical wherever the task ran."""
    scrubber = scrubber or PathScrubber()
    tb = exc.__traceback__
    for _ in range(skip_frames):
        if tb is not None:
            tb = tb.tb_next
    te = traceback.TracebackException(type(exc), exc, tb, compact=True)
    _relabel(te, scrubber, set())
    return {
        "type": type_name(exc),
        "message": scrubber.text(_safe_str(exc)),
        "traceback": scrubber.text("".join(te.format())),
    }
