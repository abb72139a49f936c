"""Reading the results store that ``daemons/result_store.py`` writes.

Layout and record format are that module's contract (see its docstring)::

    <store>/<group>/<wu_name>.json          the record ("status": "done" | "error")
    <store>/<group>/<wu_name>/<open_name>   the canonical output files (or their
                                            text inline in the record: "inline")

``<group>`` is ``batch_<id>`` for workunits of a batch. Everything read here
came from a volunteer in the end: files are read with a size limit, parsed
as JSON, and never unpickled; paths from a record must stay in the group.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any, Optional

from ...errors import BoincPymwError

#: the worker's output file, by logical name (see the worker job format)
OUTPUT_OPEN_NAME = "output.json"


class StoreError(BoincPymwError):
    """A store record or output file is malformed, unsafe or too large."""


def default_store_dir(project, app_name: str) -> str:
    """Where ResultStoreAssimilator writes when given no ``--store``."""
    return os.path.join(project.path, "results_store")


def _option(words: list, name: str) -> Optional[str]:
    """The value of ``--name``/``-name`` (``X`` or ``=X``) in a daemon command."""
    for i, word in enumerate(words):
        for prefix in (f"--{name}", f"-{name}"):
            if word == prefix and i + 1 < len(words):
                return words[i + 1]
            if word.startswith(prefix + "="):
                return word[len(prefix) + 1:]
    return None


def configured_store_dir(project, app_name: str) -> tuple[Path, bool]:
    """(store directory, True) from the ``--store`` of the app's result-store
    assimilator in config.xml, or (that assimilator's default, False) when
    config.xml lists none for the app."""
    import shlex

    for daemon in getattr(project.config, "daemons", ()):
        try:
            words = shlex.split(daemon.cmd)
        except ValueError:
            continue
        if not words or "result_store" not in os.path.basename(words[0]) or daemon.disabled:
            continue
        if _option(words, "app") != app_name:
            continue
        store = _option(words, "store")
        if store:
            return (Path(store) if os.path.isabs(store) else Path(project.path) / store), True
        return Path(default_store_dir(project, app_name)), True
    return Path(default_store_dir(project, app_name)), False


def batch_group(batch_id: int) -> str:
    """The store group of a batch's workunits (daemons/result_store.group_name)."""
    return f"batch_{int(batch_id)}" if batch_id else ""


#: no symlink as the last part; a FIFO must not block the open
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)


def _read_file(path: str, max_bytes: int) -> bytes:
    """All of a regular file, refusing more than ``max_bytes`` or a file that grows.

    Raises FileNotFoundError when there is none. The read is sized from
    fstat (asking for ``max_bytes`` at once would make Python allocate
    16 MiB for every small record) and uses no Python file object: a poll
    reads thousands of small records, and the object cost as much as the read.
    """
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise StoreError(f"cannot open {path}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise StoreError(f"{path} is not a regular file")
        size = st.st_size
        if size > max_bytes:
            raise StoreError(f"{path} is larger than {max_bytes} bytes")
        chunks, got = [], 0
        while got <= size:
            chunk = os.read(fd, size + 1 - got)
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
    finally:
        os.close(fd)
    if got > size:
        raise StoreError(f"{path} grew while it was read")
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _parse_json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise StoreError(f"{what} is not valid JSON: {exc}") from None


def read_record(group_dir, wu_name: str, max_bytes: int) -> Optional[dict]:
    """The record of ``wu_name`` (None while there is none)."""
    if not wu_name or "/" in wu_name or "\0" in wu_name or wu_name.startswith("."):
        raise StoreError(f"bad workunit name {wu_name!r}")
    path = f"{group_dir}/{wu_name}.json"
    try:
        data = _read_file(path, max_bytes)
    except FileNotFoundError:
        return None
    record = _parse_json(data, f"results store record {path}")
    if not isinstance(record, dict) or record.get("status") not in ("done", "error"):
        raise StoreError(f"results store record {path} has no status done/error")
    record["_group_dir"] = str(group_dir)
    return record


def list_records(group_dir: Path) -> list[str]:
    """Workunit names that have a record in ``group_dir``."""
    try:
        names = os.listdir(group_dir)
    except FileNotFoundError:
        return []
    return sorted(n[:-5] for n in names if n.endswith(".json") and not n.startswith("."))


def record_failure(record: dict) -> Optional[tuple[int, str]]:
    """(error_mask, reason) when the record says the workunit failed."""
    if record.get("status") == "done":
        return None
    mask = record.get("error_mask") or 0
    try:
        mask = int(mask)
    except (TypeError, ValueError):
        mask = 0
    reason = str(record.get("error") or "")
    if not reason:
        from ...boinc.states import describe_error_mask

        reason = describe_error_mask(mask)
    return mask, reason


def output_entry(record: dict) -> dict:
    """The record's entry for the worker output (``output.json``, or the only one)."""
    outputs = record.get("outputs")
    if not isinstance(outputs, list) or not outputs:
        raise StoreError(f"record of {record.get('wu_name')} lists no output files")
    for entry in outputs:
        if isinstance(entry, dict) and entry.get("open_name") == OUTPUT_OPEN_NAME:
            return entry
    if len(outputs) == 1 and isinstance(outputs[0], dict):
        return outputs[0]
    raise StoreError(f"record of {record.get('wu_name')} has no {OUTPUT_OPEN_NAME} output")


def _relative_path_ok(relative: str) -> bool:
    parts = relative.split("/")
    return not relative.startswith("/") and "\0" not in relative and \
        all(p not in ("", ".", "..") for p in parts)


def record_output(record: dict, max_bytes: int = 16 * 1024 * 1024) -> Any:
    """The worker's output document (parsed JSON) of a "done" record.

    An output is either inline in the record (``"inline"``: its text, for
    small outputs) or a file named relative to the group folder, which must
    stay inside it: no absolute path, no ``..``, no symlink as the last part.
    """
    entry = output_entry(record)
    what = f"output of workunit {record.get('wu_name')}"
    inline = entry.get("inline")
    if isinstance(inline, str):
        if len(inline) > max_bytes:
            raise StoreError(f"{what} is larger than {max_bytes} bytes")
        return _parse_json(inline.encode("utf-8", "surrogatepass"), what)
    relative = entry.get("file")
    if not isinstance(relative, str) or not relative:
        raise StoreError(f"workunit {record.get('wu_name')}: its output file is missing")
    if not _relative_path_ok(relative):
        raise StoreError(f"workunit {record.get('wu_name')}: output path {relative!r} "
                         f"leaves the results store")
    path = os.path.join(record["_group_dir"], relative)
    try:
        data = _read_file(path, max_bytes)
    except FileNotFoundError:
        raise StoreError(f"workunit {record.get('wu_name')}: its output {path} "
                         f"is missing") from None
    return _parse_json(data, what)


#: largest results-store record read back (volunteer data: never trusted)
MAX_RECORD_BYTES = 16 * 1024 * 1024


class ResultsStore:
    """Read side of the result-collecting assimilator's store (daemons/result_store.py).

    ``group`` is the store's sub-directory of one batch (``batch_<id>``).
    Records are volunteer data: read with a size limit, parsed as JSON,
    never unpickled.
    """

    def __init__(self, directory: Path | str, group: str):
        self.directory = Path(directory)
        self.group_dir = self.directory / group
        self._group = str(self.group_dir)

    def record(self, wu_name: str) -> Optional[dict]:
        return read_record(self._group, wu_name, MAX_RECORD_BYTES)

    def names(self) -> list[str]:
        return list_records(self.group_dir)
