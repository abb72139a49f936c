"""Workunits a daemon sets aside after the project's own handler failed on them.

BOINC's ``bin/start --cron`` restarts a daemon that exits, so a daemon that
exits on the same workunit at every start stops the whole app. Each failure
of a project's handler (``assimilate``, ``init_result``, ``compare``, or a
database statement the workunit's data makes the server reject) is appended
to ``<project>/quarantine/<app>.<kind>.jsonl``, one JSON object a line::

    {"event": "failure", "time": 1764050000.0, "kind": "assimilator", "app": "myapp",
     "wu_id": 17, "wu_name": "myapp_17", "error": "ZeroDivisionError: ...",
     "traceback": "Traceback (most recent call last): ..."}

After ``limit`` failures of one workunit (counted across restarts) an
``"event": "quarantined"`` line sets it aside: the daemon skips it from then
on and goes on with the others. The workunit keeps its state in the database
(assimilate_state READY, or need_validate set) for a human to look at. To
try it again, fix the handler and run ``boinc_pymw daemon quarantine --app
APP --release WU`` (it appends ``"event": "released"``); a running daemon
sees the file change on its next pass.

Outputs a volunteer spoiled (missing, oversized, unsafe) are not handler
failures; the assimilator logs them here as ``"event": "bad_output"`` for
the record, and they never count towards the limit.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from typing import Optional

#: failures of one workunit before it is set aside
DEFAULT_LIMIT = 3


def quarantine_path(project_dir: str, app: str, kind: str) -> str:
    return os.path.join(project_dir, "quarantine", f"{app}.{kind}.jsonl")


class Quarantine:
    """The failure counts and set-aside workunits of one daemon kind and app."""

    def __init__(self, path: str, kind: str, app: str, limit: int = DEFAULT_LIMIT):
        self.path, self.kind, self.app, self.limit = path, kind, app, max(1, int(limit))
        self.failures: dict[int, int] = {}
        self.quarantined: dict[int, str] = {}
        self._seen_stat: Optional[tuple] = None
        self.reload()

    # -- reading ------------------------------------------------------------------------
    def reload(self) -> None:
        """Read the file again if it changed (a release, another process's failures)."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            if self._seen_stat is not None:
                self.failures, self.quarantined = {}, {}
            self._seen_stat = None
            return
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        if stamp == self._seen_stat:
            return
        failures: dict[int, int] = {}
        quarantined: dict[int, str] = {}
        with open(self.path, encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    entry = json.loads(line)
                    wu_id = int(entry["wu_id"])
                except (ValueError, KeyError, TypeError):
                    continue            # a torn or hand-edited line: ignore it
                event = entry.get("event")
                if event == "failure":
                    failures[wu_id] = failures.get(wu_id, 0) + 1
                elif event == "quarantined":
                    quarantined[wu_id] = str(entry.get("wu_name", ""))
                elif event == "released":
                    failures.pop(wu_id, None)
                    quarantined.pop(wu_id, None)
        self.failures, self.quarantined, self._seen_stat = failures, quarantined, stamp

    def ids(self) -> list[int]:
        """Workunit ids set aside (sorted)."""
        return sorted(self.quarantined)

    # -- writing ------------------------------------------------------------------------
    def _append(self, entry: dict) -> None:
        entry = {"event": entry.pop("event"), "time": time.time(), "kind": self.kind,
                 "app": self.app, **entry}
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        line = (json.dumps(entry) + "\n").encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)          # one write: lines of --mod processes never interleave
        finally:
            os.close(fd)

    def record_failure(self, wu: dict, exc: BaseException) -> bool:
        """Count a handler failure on ``wu``; True when that sets it aside."""
        self.reload()
        wu_id = int(wu["id"])
        info = {"wu_id": wu_id, "wu_name": wu.get("name"),
                "error": f"{type(exc).__name__}: {exc}",
                "traceback": "".join(traceback.format_exception(type(exc), exc,
                                                                exc.__traceback__))}
        self._append({"event": "failure", **info})
        count = self.failures.get(wu_id, 0) + 1
        self.failures[wu_id] = count
        if count < self.limit:
            return False
        self._append({"event": "quarantined", "failures": count, **info})
        self.quarantined[wu_id] = str(wu.get("name", ""))
        self.reload()
        return True

    def record_bad_output(self, wu: dict, reason: str) -> None:
        """Note a volunteer's spoiled output (not counted as a failure)."""
        self._append({"event": "bad_output", "wu_id": int(wu["id"]),
                      "wu_name": wu.get("name"), "error": reason})
        self.reload()

    def release(self, wu_id: int, wu_name: str = "") -> None:
        """Forget the failures of one workunit: the daemon tries it again."""
        self._append({"event": "released", "wu_id": int(wu_id), "wu_name": wu_name})
        self.reload()
