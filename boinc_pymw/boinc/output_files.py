"""A result's output files, found and read the way volunteers' data deserves.

Everything here handles untrusted input: the file names come from the
database (``result.xml_doc_in``), the bytes from volunteers' machines.

* ``xml_doc_in`` is parsed by lxml with no entity resolution, no DTD and
  no network (:func:`safe_xml`);
* a file name must be a plain name, and the path it maps to through the
  upload hierarchy (``dir_hier_path(name, upload_dir, uldl_dir_fanout)``,
  as BOINC's ``get_output_file_infos``) must stay inside ``upload_dir``
  after resolving symlinks;
* reads stop at a size limit: the smaller of the reader's limit and the
  output template's ``<max_nbytes>`` (BOINC's upload handler enforces it, so
  a bigger file was put there some other way); an empty, missing or
  oversized file, a symbolic link or anything but a regular file is a
  :class:`BadOutputFile` (the result is invalid), while a file system that
  looks unavailable (upload_dir gone, EIO, ESTALE...) is a
  :class:`TransientFileError` (try again later, as BOINC's ERR_OPENDIR);
* :func:`iter_output` reads in chunks, so a validator that digests or
  streams a file holds one chunk of it, not the whole file.
"""

from __future__ import annotations

import errno
import functools
import os
import stat
import threading
from dataclasses import dataclass
from typing import Iterator, Optional

from lxml import etree

#: default cap on one output file read into memory
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
#: size of the pieces :func:`iter_output` yields
CHUNK_BYTES = 1 << 20

# errno values that mean "the storage is not there right now", not "bad file"
_TRANSIENT_ERRNOS = {errno.EIO, errno.ESTALE, errno.ENOTCONN, errno.EAGAIN,
                     errno.ETIMEDOUT, errno.EHOSTDOWN, errno.ENOMEDIUM}


class BadOutputFile(Exception):
    """An output file that makes its result invalid (missing, empty, too big, unsafe)."""


class TransientFileError(Exception):
    """The upload storage looks unavailable; validate this result later."""


@dataclass(frozen=True)
class OutputFile:
    """One ``<file_ref>`` of a result, with its place in the upload hierarchy."""

    name: str           # physical name, e.g. wu_0_r1234_0
    open_name: str      # logical name the app wrote, e.g. "out"
    path: str           # absolute path under upload_dir
    optional: bool = False
    no_validate: bool = False
    max_nbytes: Optional[int] = None    # the template's <max_nbytes>, if any

    def limit(self, max_bytes: int) -> int:
        """The size limit for this file: the reader's, or the template's if smaller."""
        return min(max_bytes, self.max_nbytes) if self.max_nbytes else max_bytes


_parsers = threading.local()


def _parser():
    parser = getattr(_parsers, "parser", None)
    if parser is None:      # one per thread: lxml parsers are not shared between threads
        parser = _parsers.parser = etree.XMLParser(
            resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
            huge_tree=False, remove_blank_text=True)
    return parser


def safe_xml(text, *, wrap: bool = False):
    """Parse XML from the database or a volunteer: no entities, DTD or network."""
    parser = _parser()
    if isinstance(text, str):
        text = text.encode("utf-8")
    if wrap:
        text = b"<_root>" + (text or b"") + b"</_root>"
    try:
        root = etree.fromstring(text, parser)
    except etree.XMLSyntaxError as exc:
        raise BadOutputFile(f"malformed XML: {exc}") from exc
    if root is None:
        raise BadOutputFile("empty XML document")
    for node in root.iter():
        if isinstance(node, etree._Entity):
            raise BadOutputFile("XML entities are not accepted")
    return root


def check_file_name(name: str) -> str:
    """A physical file name from the database must be a plain, harmless name."""
    if (not name or len(name) > 255 or name in (".", "..") or "/" in name or "\\" in name
            or "\x00" in name or name != name.strip()):
        raise BadOutputFile(f"unsafe output file name {name!r}")
    return name


def _max_nbytes(info) -> Optional[int]:
    text = (info.findtext("max_nbytes") or "").strip() if info is not None else ""
    try:
        value = float(text)
    except ValueError:
        return None
    return int(value) if value >= 1 and value < 2 ** 62 else None


def parse_file_refs(xml_doc_in) -> list[dict]:
    """The ``<result><file_ref>``s of ``xml_doc_in``: name, open_name, flags, max_nbytes."""
    root = safe_xml(xml_doc_in or "", wrap=True)
    infos = {(info.findtext("name") or "").strip(): info for info in root.iterfind("file_info")}
    refs = []
    for ref in root.iterfind("result/file_ref"):
        name = (ref.findtext("file_name") or "").strip()
        open_name = (ref.findtext("open_name") or "").strip()
        if not name:
            raise BadOutputFile("<file_ref> without <file_name> in xml_doc_in")
        refs.append({
            "name": check_file_name(name),
            "open_name": open_name,
            "optional": ref.find("optional") is not None,
            "no_validate": ref.find("no_validate") is not None,
            "max_nbytes": _max_nbytes(infos.get(name)),
        })
    return refs


def _inside(path: str, root: str) -> bool:
    return os.path.commonpath([path, root]) == root


@functools.lru_cache(maxsize=16)
def _real_root(upload_dir: str) -> str:
    # upload_dir itself is the project's, not a volunteer's: resolve it once
    return os.path.realpath(upload_dir)


@functools.lru_cache(maxsize=8192)
def _dir_inside(directory: str, root: str) -> bool:
    # the fan-out directories are the project's: each is resolved once per process;
    # the file itself is checked every time (lstat, then opened with O_NOFOLLOW)
    return _inside(os.path.realpath(directory), root)


def output_files(result: dict, upload_dir: str, fanout: int) -> list[OutputFile]:
    """The output files of ``result`` (a row with ``xml_doc_in``), in template order."""
    from .hierarchy import dir_hier_path

    root = _real_root(upload_dir)
    files = []
    for ref in parse_file_refs(result.get("xml_doc_in") or ""):
        path = os.path.abspath(dir_hier_path(ref["name"], upload_dir, int(fanout or 0)))
        if not _dir_inside(os.path.dirname(path), root):
            raise BadOutputFile(f"output file {ref['name']!r} resolves outside upload_dir")
        try:
            if stat.S_ISLNK(os.lstat(path).st_mode) and not _inside(os.path.realpath(path), root):
                raise BadOutputFile(f"output file {ref['name']!r} resolves outside upload_dir")
        except FileNotFoundError:
            pass
        files.append(OutputFile(ref["name"], ref["open_name"], path,
                                ref["optional"], ref["no_validate"], ref["max_nbytes"]))
    return files


def _check_storage(upload_dir: str) -> None:
    try:
        if not os.path.isdir(upload_dir) or not os.access(upload_dir, os.R_OK | os.X_OK):
            raise TransientFileError(f"upload_dir {upload_dir} is not available")
    except OSError as exc:  # pragma: no cover - isdir swallows most errors
        raise TransientFileError(f"upload_dir {upload_dir}: {exc}") from exc


def iter_output(file: OutputFile, upload_dir: str, max_bytes: int = DEFAULT_MAX_BYTES,
                allow_empty: bool = False, chunk_bytes: Optional[int] = CHUNK_BYTES
                ) -> Optional[Iterator[bytes]]:
    """The bytes of one output file in chunks, or None for a missing ``<optional/>`` file.

    The file is opened (and checked: inside upload_dir, not a symbolic link, a
    regular file, within the size limit) before this returns; reading then
    raises :class:`BadOutputFile` if it grows past the limit or turns out empty.
    """
    root = _real_root(upload_dir)
    limit = file.limit(max_bytes)
    try:
        if not _dir_inside(os.path.dirname(os.path.abspath(file.path)), root):
            raise BadOutputFile(f"{file.name}: resolves outside upload_dir")
        if stat.S_ISLNK(os.lstat(file.path).st_mode):
            raise BadOutputFile(f"{file.name}: is a symbolic link")
        fd = os.open(file.path,
                     os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        _check_storage(upload_dir)
        if file.optional:
            return None
        raise BadOutputFile(f"{file.name}: output file missing") from None
    except OSError as exc:
        if exc.errno in _TRANSIENT_ERRNOS:
            raise TransientFileError(f"{file.name}: {exc}") from exc
        _check_storage(upload_dir)
        raise BadOutputFile(f"{file.name}: {exc}") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise BadOutputFile(f"{file.name}: not a regular file")
        if info.st_size > limit:
            raise BadOutputFile(f"{file.name}: {info.st_size} bytes, over the {limit}-byte limit")
    except BaseException:
        os.close(fd)
        raise
    return _chunks(fd, file.name, limit, allow_empty, chunk_bytes or info.st_size + 1)


def _chunks(fd: int, name: str, limit: int, allow_empty: bool,
            chunk_bytes: int) -> Iterator[bytes]:
    try:
        total = 0
        while True:
            try:
                chunk = os.read(fd, min(chunk_bytes, limit + 1 - total))
            except OSError as exc:
                if exc.errno in _TRANSIENT_ERRNOS:
                    raise TransientFileError(f"{name}: {exc}") from exc
                raise BadOutputFile(f"{name}: {exc}") from exc
            if not chunk:
                break
            total += len(chunk)
            if total > limit:
                raise BadOutputFile(f"{name}: over the {limit}-byte limit")
            yield chunk
        if not total and not allow_empty:
            raise BadOutputFile(f"{name}: output file is empty")
    finally:
        os.close(fd)


def read_output(file: OutputFile, upload_dir: str, max_bytes: int = DEFAULT_MAX_BYTES,
                allow_empty: bool = False) -> Optional[bytes]:
    """The bytes of one output file, or None for a missing ``<optional/>`` file.

    Raises :class:`BadOutputFile` (result invalid) or :class:`TransientFileError`.
    """
    chunks = iter_output(file, upload_dir, max_bytes, allow_empty)
    if chunks is None:
        return None
    parts = list(chunks)
    return parts[0] if len(parts) == 1 else b"".join(parts)
