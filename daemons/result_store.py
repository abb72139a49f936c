"""Result-collecting assimilator: copies canonical outputs into a results store.

The store is what the Master's BOINC back end reads to resolve futures, so
its format is a contract::

    <store>/<group>/<wu_name>.json          one record per workunit
    <store>/<group>/<wu_name>/<open_name>   copies of the canonical output files
                                            (none for an output held inline)

``<group>`` is ``batch_<N>`` when ``workunit.batch`` is non-zero, else the
app name. The JSON record (UTF-8) is::

    {"format": 1, "status": "done" | "error",
     "wu_id": 17, "wu_name": "...", "app": "myapp", "batch": 0,
     "canonical_result": "wu_0" | null, "canonical_result_id": 33 | null,
     "outputs": [{"open_name": "out0", "file": "<wu_name>/out0",   # relative to the group dir
                  "name": "<physical name>", "nbytes": 123, "md5": "..."}],
                 # the worker's output document (open name "output.json") of at most
                 # INLINE_MAX_BYTES of UTF-8 is held in the record instead of a file:
                 # {"open_name": "output.json", "file": null, "inline": "<its text>", ...}
     "error_mask": 0, "error": "" | "too many results ended in error ...",
     "assimilated_time": 1764050000.0}

A record is written to a temporary name and renamed into place after the
files are copied, so a reader that sees ``<wu_name>.json`` sees it
complete. Inlining the worker's small output document keeps a call at one
file in the store (no folder, no copy) with the same guarantee: the record
is the output. Running the handler again for the same workunit (after a crash)
rewrites the same files and record. A missing ``<optional/>`` output is
listed with ``"file": null``.

Group commit: within a daemon pass, files go to fixed temporary names
(``.<name>.tmp``, so a rerun after a crash overwrites them) without a sync
each; :meth:`ResultStoreAssimilator.make_durable` then syncs the store's
file system once, renames the group's outputs and then its records into
place, and syncs again, before the workunits are marked assimilated. So a
record appears only with its contents and outputs on disk, and a workunit
is marked only once its record is durable; after ``kill -9`` at any point
nothing is lost and a workunit may be stored twice (the same bytes).

A canonical result whose output cannot be stored (missing, empty where that
is not allowed, over its ``<max_nbytes>`` or the size limit, a symbolic link
or not a regular file -- ``<no_validate/>`` outputs included, and files
removed or replaced after validation) gets an ``"status": "error"`` record
whose ``"error"`` names the file and the reason (``error_mask`` stays the
workunit's); the workunit is assimilated and the daemon goes on.

Options: ``--store DIR`` (default ``<project>/results_store``).
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import logging
import os
import sys
import time

from boinc_pymw.boinc.assimilator import Assimilator
from boinc_pymw.boinc.output_files import BadOutputFile, check_file_name
from boinc_pymw.boinc.project_files import make_project_dir, make_readable
from boinc_pymw.names import BadName, check_workunit_name

FORMAT_VERSION = 1
#: the worker's output document (boinc_pymw.worker), inlined in the record when small
INLINE_OPEN_NAME = "output.json"
#: largest output held inline in its record (larger ones are copied as files)
INLINE_MAX_BYTES = 64 * 1024

log = logging.getLogger("boinc_pymw.result_store")


def _load_syncfs():
    try:
        func = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    func.argtypes = [ctypes.c_int]
    return func


_syncfs = _load_syncfs()


def sync_file_system(path: str, files: list) -> None:
    """Make ``files`` (and the directory entries under ``path``) durable.

    Linux: one ``syncfs`` of the store's file system for the whole group;
    elsewhere an ``fsync`` of each file and directory.
    """
    if _syncfs is not None:
        fd = os.open(path, os.O_RDONLY)
        try:
            if _syncfs(fd) != 0:
                code = ctypes.get_errno()
                raise OSError(code, f"syncfs {path}: {os.strerror(code)}")
        finally:
            os.close(fd)
        return
    for name in files:
        fd = os.open(name, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_staged(path: str, data: bytes) -> str:
    """Write ``data`` to the fixed temporary name of ``path``; returns that name."""
    directory, name = os.path.split(path)
    tmp = os.path.join(directory, f".{name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        make_readable(fd)                         # 0644 whatever the umask
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)
    return tmp


def group_name(wu: dict, app_name: str) -> str:
    return f"batch_{wu['batch']}" if wu.get("batch") else app_name


class ResultStoreAssimilator(Assimilator):
    """Copy each workunit's canonical outputs (or its error) into the results store."""

    @classmethod
    def add_arguments(cls, parser):
        super().add_arguments(parser)
        parser.add_option("store", default=None, help="results store directory")

    def __init__(self, options, project=None, db=None):
        super().__init__(options, project, db)
        self._outputs: list[tuple[str, str]] = []    # (temporary, final) not yet in place
        self._records: list[tuple[str, str]] = []
        self._in_pass = False
        self._made_dirs: set[str] = set()

    @property
    def store_dir(self) -> str:
        return self.options.store or os.path.join(self.project.path, "results_store")

    def do_pass(self) -> bool:
        self._in_pass = True
        try:
            return super().do_pass()
        finally:
            self._in_pass = False

    def make_durable(self) -> None:
        """Sync the group's files, put them in place (outputs first), sync the renames."""
        staged = self._outputs + self._records
        if not staged:
            return
        make_project_dir(self.store_dir)         # 0771 whatever the umask, as BOINC
        sync_file_system(self.store_dir, [tmp for tmp, _ in staged])
        for tmp, final in staged:
            os.replace(tmp, final)
        self._outputs, self._records = [], []
        sync_file_system(self.store_dir, sorted({os.path.dirname(f) for _, f in staged}))

    def assimilate(self, wu, results, canonical):
        staged = len(self._outputs), len(self._records)
        try:
            try:
                self._store(wu, canonical, staged[0])
            except FileNotFoundError:
                # a store directory removed while we run: make it again, once
                del self._outputs[staged[0]:]
                del self._records[staged[1]:]
                self._made_dirs.clear()
                self._store(wu, canonical, staged[0])
        except BaseException:
            del self._outputs[staged[0]:]       # nothing of a failed workunit goes in place
            del self._records[staged[1]:]
            raise

    def _store(self, wu, canonical, first_output: int) -> None:
        try:
            wu_name = check_workunit_name(wu["name"])
        except BadName as exc:
            # not the Master's workunit (create_work refuses such names): nothing to store
            raise BadOutputFile(f"workunit name cannot be stored: {exc}") from None
        group_dir = os.path.join(self.store_dir, group_name(wu, self.options.app))
        if group_dir not in self._made_dirs:
            make_project_dir(group_dir)
            self._made_dirs.add(group_dir)
        record = {
            "format": FORMAT_VERSION, "status": "done" if canonical else "error",
            "wu_id": wu["id"], "wu_name": wu_name, "app": self.options.app,
            "batch": wu.get("batch") or 0,
            "canonical_result": canonical["name"] if canonical else None,
            "canonical_result_id": canonical["id"] if canonical else None,
            "outputs": [], "error_mask": int(wu["error_mask"] or 0),
            "error": "" if canonical else self.describe_error(wu),
            "assimilated_time": time.time(),
        }
        if canonical is not None:
            try:
                record["outputs"] = self.store_outputs(canonical, group_dir, wu_name)
            except BadOutputFile as exc:
                del self._outputs[first_output:]
                reason = f"canonical result {canonical['name']}: {exc}"
                log.error("[%s] %s; an error record is stored", wu_name, reason)
                record.update(status="error", outputs=[], error=reason)
                try:
                    self.quarantine.record_bad_output(wu, reason)
                except OSError as note_exc:
                    log.error("can't note it in %s: %s", self.quarantine.path, note_exc)
        final = os.path.join(group_dir, f"{wu_name}.json")
        self._records.append((_write_staged(final, json.dumps(record, indent=1).encode("utf-8")),
                              final))
        if not self._in_pass:
            self.make_durable()     # called on its own (boinc-local mode): in place now

    def store_outputs(self, canonical: dict, group_dir: str, wu_name: str) -> list[dict]:
        """Copy each output of the canonical result into ``<group>/<wu_name>/``
        (the folder is made only when an output is not inlined)."""
        out_dir = os.path.join(group_dir, wu_name)
        made = False
        entries = []
        for n, f in enumerate(self.output_files(canonical)):
            local = check_file_name(f.open_name or f"out{n}")
            data = self.read_output(f)
            entry = {"open_name": f.open_name, "name": f.name, "file": None,
                     "nbytes": 0, "md5": None}
            if data is not None:
                entry.update(nbytes=len(data), md5=hashlib.md5(data).hexdigest())
                text = _inline_text(f.open_name, data)
                if text is not None:
                    entry["inline"] = text
                else:
                    if not made:
                        make_project_dir(out_dir)
                        made = True
                    final = os.path.join(out_dir, local)
                    self._outputs.append((_write_staged(final, data), final))
                    entry["file"] = f"{wu_name}/{local}"
            elif not f.optional:
                raise BadOutputFile(f"{f.name}: canonical output missing")
            entries.append(entry)
        return entries


def _inline_text(open_name, data: bytes):
    """The text of an output held inline in its record (None: copy it as a file).

    Only the worker's output document: other apps' readers find their
    outputs as files. Its bytes must be UTF-8 so the record keeps them exactly.
    """
    if open_name != INLINE_OPEN_NAME or len(data) > INLINE_MAX_BYTES:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def read_record(store: str, group: str, wu_name: str) -> dict:
    """Read one record back (what the Master's back end does)."""
    with open(os.path.join(store, group, check_file_name(wu_name) + ".json"), encoding="utf-8") as f:
        return json.load(f)


if __name__ == "__main__":
    sys.exit(ResultStoreAssimilator.main())
