"""Result-collecting assimilator: copies canonical outputs into a results store.

The store is what the Master's BOINC back end reads to resolve futures, so
its format is a contract::

    <store>/<group>/<wu_name>.json          one record per workunit
    <store>/<group>/<wu_name>/<open_name>   copies of the canonical output files

``<group>`` is ``batch_<N>`` when ``workunit.batch`` is non-zero, else the
app name. The JSON record (UTF-8) is::

    {"format": 1, "status": "done" | "error",
     "wu_id": 17, "wu_name": "...", "app": "myapp", "batch": 0,
     "canonical_result": "wu_0" | null, "canonical_result_id": 33 | null,
     "outputs": [{"open_name": "out0", "file": "<wu_name>/out0",   # relative to the group dir
                  "name": "<physical name>", "nbytes": 123, "md5": "..."}],
     "error_mask": 0, "error": "" | "too many results ended in error ...",
     "assimilated_time": 1764050000.0}

A record is written to a temporary name and renamed into place after the
files are copied, so a reader that sees ``<wu_name>.json`` sees it
complete. Running the handler again for the same workunit (after a crash)
rewrites the same files and record. A missing ``<optional/>`` output is
listed with ``"file": null``.

A canonical result whose output cannot be stored (missing, empty where that
is not allowed, over its ``<max_nbytes>`` or the size limit, a symbolic link
or not a regular file -- ``<no_validate/>`` outputs included, and files
removed or replaced after validation) gets an ``"status": "error"`` record
whose ``"error"`` names the file and the reason (``error_mask`` stays the
workunit's); the workunit is assimilated and the daemon goes on.

Options: ``--store DIR`` (default ``<project>/results_store``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import time

from boinc_pymw._atomic import write_atomic
from boinc_pymw.boinc.assimilator import Assimilator
from boinc_pymw.boinc.output_files import BadOutputFile, check_file_name

FORMAT_VERSION = 1

log = logging.getLogger("boinc_pymw.result_store")


def group_name(wu: dict, app_name: str) -> str:
    return f"batch_{wu['batch']}" if wu.get("batch") else app_name


class ResultStoreAssimilator(Assimilator):
    """Copy each workunit's canonical outputs (or its error) into the results store."""

    @classmethod
    def add_arguments(cls, parser):
        super().add_arguments(parser)
        parser.add_option("store", default=None, help="results store directory")

    @property
    def store_dir(self) -> str:
        return self.options.store or os.path.join(self.project.path, "results_store")

    def assimilate(self, wu, results, canonical):
        wu_name = check_file_name(wu["name"])
        group_dir = os.path.join(self.store_dir, group_name(wu, self.options.app))
        os.makedirs(group_dir, exist_ok=True)
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
                reason = f"canonical result {canonical['name']}: {exc}"
                log.error("[%s] %s; an error record is stored", wu_name, reason)
                record.update(status="error", outputs=[], error=reason)
                try:
                    self.quarantine.record_bad_output(wu, reason)
                except OSError as note_exc:
                    log.error("can't note it in %s: %s", self.quarantine.path, note_exc)
        write_atomic(os.path.join(group_dir, f"{wu_name}.json"),
                     json.dumps(record, indent=1).encode("utf-8"))

    def store_outputs(self, canonical: dict, group_dir: str, wu_name: str) -> list[dict]:
        """Copy each output of the canonical result into ``<group>/<wu_name>/``."""
        out_dir = os.path.join(group_dir, wu_name)
        os.makedirs(out_dir, exist_ok=True)
        entries = []
        for n, f in enumerate(self.output_files(canonical)):
            local = check_file_name(f.open_name or f"out{n}")
            data = self.read_output(f)
            entry = {"open_name": f.open_name, "name": f.name, "file": None,
                     "nbytes": 0, "md5": None}
            if data is not None:
                write_atomic(os.path.join(out_dir, local), data)
                entry.update(file=f"{wu_name}/{local}", nbytes=len(data),
                             md5=hashlib.md5(data).hexdigest())
            elif not f.optional:
                raise BadOutputFile(f"{f.name}: canonical output missing")
            entries.append(entry)
        return entries


def read_record(store: str, group: str, wu_name: str) -> dict:
    """Read one record back (what the Master's back end does)."""
    with open(os.path.join(store, group, check_file_name(wu_name) + ".json"), encoding="utf-8") as f:
        return json.load(f)


if __name__ == "__main__":
    sys.exit(ResultStoreAssimilator.main())
