"""The BOINC back end: each call becomes a workunit of one named batch.

Data flow::

    Master.submit / map --> WorkItem (one call, never chunked: default_chunksize=1)
        |  encode_task(fn, args, kwargs): {"function": "mod:qualname", "args", "kwargs"}
        |  (JSON only: the code comes from the installed app version)
        v
    workunit "<batch>_<n>" (n = call index in this Master), input file
    "<batch>_<n>.json" staged in the download hierarchy, created with the
    app's own templates (templates/<app>_in, templates/<app>_out)
        |
        v  BOINC: transitioner -> scheduler -> volunteers -> validator ->
        |         result-collecting assimilator (daemons/) -> results store
        v
    collector thread, every poll_interval:
        SELECT pending workunits of the batch that are assimilated
          -> results store record (untrusted JSON, size-limited) -> decode_output
          -> future.set_result / set_exception
        a failed workunit -> WorkunitFailed (error_mask decoded + stderr excerpt)

Reattaching: a Master given an existing batch name finds that batch's
workunits by name. A call whose workunit exists (same input bytes) is not
submitted again; its future completes from the store as soon as the result is
there (at once when it already is). A call whose input differs from the
stored one is refused: results would be mixed up.

Cancelling a future (or ``shutdown(cancel_futures=True)``, or
:meth:`BoincBackend.cancel_batch`) cancels its workunits as BOINC's
``cancel_jobs`` does (see :func:`cancel_workunits`).

The database driver is imported only when a back end is created.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

from ...errors import BoincPymwError
from ..base import Backend, WorkItem
from .calls import (changed_input_error, check_batch_name, encode_call, encode_input,
                    input_file_name, new_batch_name, workunit_name)
from .outcomes import WorkunitFailed, failure_detail, outcome_from_record
from .results_store import ResultsStore

log = logging.getLogger("boinc_pymw.backends.boinc")

#: batch.state values (db/boinc_db_types.h BATCH_STATE_*)
BATCH_STATE_IN_PROGRESS = 1
BATCH_STATE_COMPLETE = 2
BATCH_STATE_ABORTED = 3


# -- the database side ---------------------------------------------------------------
def cancel_workunits(db, wu_ids: Iterable[int], now: Optional[int] = None) -> int:
    """Cancel workunits as BOINC's ``cancel_jobs`` (tools/backend_lib.cpp) does.

    Results not sent yet (server_state <= UNSENT) become OVER/DIDNT_NEED; the
    workunits get ``error_mask |= CANCELLED`` and ``transition_time = now`` so
    the transitioner finishes them (results in progress are left to report,
    as in BOINC). Returns the number of workunits changed.
    """
    from ...boinc.states import Outcome, ServerState, WuError

    ids = sorted({int(i) for i in wu_ids})
    if not ids:
        return 0
    now = int(time.time()) if now is None else int(now)
    changed = 0
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        marks = ", ".join(["%s"] * len(chunk))
        with db.transaction():
            db.execute(
                f"UPDATE result SET server_state=%s, outcome=%s "
                f"WHERE server_state<=%s AND workunitid IN ({marks})",
                (int(ServerState.OVER), int(Outcome.DIDNT_NEED), int(ServerState.UNSENT),
                 *chunk))
            changed += db.execute(
                f"UPDATE workunit SET error_mask=error_mask|%s, transition_time=%s "
                f"WHERE id IN ({marks})",
                (int(WuError.CANCELLED), now, *chunk))
    return changed


def find_batch(db, name: str, app_id: Optional[int] = None) -> Optional[dict]:
    sql, params = "SELECT * FROM batch WHERE name=%s", [name]
    if app_id is not None:
        sql += " AND app_id=%s"
        params.append(app_id)
    return db.query_one(sql + " ORDER BY id LIMIT 1", tuple(params))


def create_batch_row(db, name: str, app_id: int) -> int:
    now = int(time.time())
    return db.insert("batch", {
        "user_id": 0, "create_time": now, "logical_start_time": 0, "logical_end_time": 0,
        "est_completion_time": 0, "njobs": 0, "fraction_done": 0, "nerror_jobs": 0,
        "state": BATCH_STATE_IN_PROGRESS, "completion_time": 0, "credit_estimate": 0,
        "credit_canonical": 0, "credit_total": 0, "name": name, "app_id": app_id,
        "project_state": 0, "description": "boinc_pymw Master batch", "expire_time": 0,
    })


def _option(words: list, name: str) -> Optional[str]:
    """The value of ``--name``/``-name`` (``X`` or ``=X``) in a daemon command."""
    for i, word in enumerate(words):
        for prefix in (f"--{name}", f"-{name}"):
            if word == prefix and i + 1 < len(words):
                return words[i + 1]
            if word.startswith(prefix + "="):
                return word[len(prefix) + 1:]
    return None


# -- the back end ---------------------------------------------------------------------------
class BoincBackend(Backend):
    """Run each call as a BOINC workunit of one named batch (see module docstring)."""

    name = "boinc"
    default_chunksize = 1
    #: workunit fields a Master may set (Backend.check_options accepts them)
    extra_options = ("min_quorum", "target_nresults", "delay_bound", "rsc_fpops_est",
                     "rsc_fpops_bound", "max_error_results", "max_total_results",
                     "max_success_results", "priority")

    def __new__(cls, *args: Any, **options: Any):
        if cls is BoincBackend and options.get("url"):   # remote: see remote.py
            from .remote import RemoteBoincBackend

            return RemoteBoincBackend(*args, **options)
        return super().__new__(cls)

    @classmethod
    def check_options(cls, options: dict) -> None:
        if cls is BoincBackend and options.get("url"):
            from .remote import RemoteBoincBackend

            return RemoteBoincBackend.check_options(options)
        return super().check_options(options)

    def __init__(self, workers: Optional[int] = None, *, project: Optional[str] = None,
                 app: str = "boinc_pymw", batch: Optional[str] = None,
                 results_dir: Optional[str] = None, poll_interval: float = 5.0,
                 **options: Any):
        wu_fields = {k: options.pop(k) for k in self.extra_options if k in options}
        super().__init__(workers, **options)
        from ...boinc.project import Project

        self.project = Project(project)
        self.app_name = app
        self.app = self.project.app(app)
        self.poll_interval = float(poll_interval)
        generated = batch is None
        self.batch = check_batch_name(batch or new_batch_name())
        self.wu_fields = {k: v for k, v in wu_fields.items() if v is not None}
        self._lock = threading.Lock()
        self._next_index = 0
        self._pending: dict[str, tuple[WorkItem, int]] = {}   # wu name -> (item, wu id)
        self._cancelled_ids: set[int] = set()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._closed = False
        row = find_batch(self.project.db, self.batch, self.app["id"])
        self.reattached = row is not None
        self.batch_id = row["id"] if row else create_batch_row(self.project.db, self.batch,
                                                               self.app["id"])
        from .results_store import batch_group

        self.store = ResultsStore(results_dir or self.default_results_dir(),
                                  batch_group(self.batch_id))
        self._existing = self._load_existing()
        if generated:
            print(f"boinc_pymw: batch {self.batch} (reattach with --batch {self.batch})",
                  file=sys.stderr)
        log.info("batch %s (id %s) of app %s: %s, %d workunits already there", self.batch,
                 self.batch_id, app, "reattached" if self.reattached else "new",
                 len(self._existing))
        self._collector = threading.Thread(target=self._collect_loop,
                                           name=f"boinc-collector-{self.batch}", daemon=True)
        self._collector.start()

    # -- command line ----------------------------------------------------------------------
    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group("BOINC (-i boinc / boinc-local)")
        if not any("--project" in a.option_strings for a in parser._actions):
            group.add_argument("-p", "--project", default=None,
                               help="BOINC project directory (default: $BOINC_PROJECT_DIR, . or ..)")
            group.add_argument("--app", default=None,
                               help="BOINC application name (default boinc_pymw)")
            group.add_argument("--batch", default=None,
                               help="batch name; a Master given an existing batch reattaches "
                                    "to it (default: a new unique name, printed)")
            group.add_argument("--results-dir", default=None,
                               help="results store of the app's assimilator (default: the "
                                    "project's, see daemons/)")
            from .remote import RemoteBoincBackend

            RemoteBoincBackend.add_arguments(group)

    @classmethod
    def options_from_args(cls, args: argparse.Namespace) -> dict:
        options = {}
        for key in ("project", "app", "batch", "results_dir"):
            value = getattr(args, key, None)
            if value is not None:
                options[key] = value
        from .remote import RemoteBoincBackend

        options.update(RemoteBoincBackend.options_from_args(args))
        return options

    # -- where the assimilator keeps results -------------------------------------------------------
    def default_results_dir(self) -> Path:
        """The ``--store`` of the app's result-store assimilator in config.xml,
        else that assimilator's default; warns when none is configured."""
        import shlex

        from .results_store import default_store_dir

        for daemon in getattr(self.project.config, "daemons", ()):
            try:
                words = shlex.split(daemon.cmd)
            except ValueError:
                continue
            if not words or "result_store" not in os.path.basename(words[0]) \
                    or daemon.disabled:
                continue
            app = _option(words, "app")
            if app != self.app_name:
                continue
            store = _option(words, "store")
            if store:
                return Path(store) if os.path.isabs(store) else Path(self.project.path) / store
            return Path(default_store_dir(self.project, self.app_name))
        log.warning("config.xml of %s lists no result-store assimilator for app %s: futures "
                    "complete only once one runs (boinc_pymw daemon add "
                    "result_store_assimilator --app %s)", self.project.path, self.app_name,
                    self.app_name)
        return Path(default_store_dir(self.project, self.app_name))

    def _load_existing(self) -> dict[str, dict]:
        rows = self.project.db.query(
            "SELECT id, name FROM workunit WHERE batch=%s", (self.batch_id,))
        return {r["name"]: r for r in rows}

    # -- work ----------------------------------------------------------------------------------
    def submit(self, items: Sequence[WorkItem]) -> None:
        if self._closed:
            raise RuntimeError("cannot submit to a BOINC back end after shutdown")
        new_jobs, known = [], []
        with self._lock:
            try:
                for item in items:
                    index = self._next_index
                    self._next_index += 1
                    name = workunit_name(self.batch, index)
                    try:
                        data = self._encode(item)
                    except Exception as exc:  # not JSON / not importable: this call fails
                        item.set_exception(exc)
                        continue
                    existing = self._existing.get(name)
                    if existing is not None:
                        self._check_same_input(name, data)
                        known.append((name, item, existing["id"]))
                    else:
                        new_jobs.append((name, item, data))
                created = self._create(new_jobs) if new_jobs else {}
            except BaseException as exc:
                # nothing of this call was submitted: no future may wait forever
                for item in items:
                    item.set_exception(exc)
                raise
            for name, item, wu_id in known + [(n, i, created[n]) for n, i, _ in new_jobs]:
                self._pending[name] = (item, wu_id)
                item.future.add_done_callback(self._on_done_callback(name, wu_id))
        self._wake.set()

    def _encode(self, item: WorkItem) -> bytes:
        return encode_input(encode_call(item))

    def _check_same_input(self, name: str, data: bytes) -> None:
        path = Path(self.project.download_path(input_file_name(name)))
        try:
            old = path.read_bytes()
        except OSError:
            return   # the input was already deleted by the file_deleter: trust the name
        if old != data:
            raise changed_input_error(self.batch, name, path)

    def _create(self, jobs: list) -> dict[str, int]:
        """Stage the inputs and create the workunits (the batch's njobs grows with
        them); returns name -> workunit id."""
        from ._submit import create_workunits

        ids = create_workunits(self.project, self.app, self.app_name, self.batch_id,
                               [(name, data) for name, _item, data in jobs], self.wu_fields)
        for name, _item, _data in jobs:
            self._existing[name] = {"id": ids[name], "name": name}
        return ids

    def _on_done_callback(self, name: str, wu_id: int) -> Callable[[Future], None]:
        def callback(future: Future) -> None:
            if future.cancelled():
                with self._lock:
                    self._pending.pop(name, None)
                    self._cancelled_ids.add(wu_id)
                self._wake.set()
        return callback

    def cancel(self, item: WorkItem) -> bool:
        return item.future.cancel()   # the done callback cancels the workunit

    def cancel_batch(self) -> int:
        """Cancel every workunit of this batch (pending futures are cancelled)."""
        with self._lock:
            items = [item for item, _ in self._pending.values()]
        for item in items:
            item.future.cancel()
        ids = [r["id"] for r in self._load_existing().values()]
        changed = cancel_workunits(self.project.db, ids)
        self.project.db.execute("UPDATE batch SET state=%s WHERE id=%s",
                                (BATCH_STATE_ABORTED, self.batch_id))
        return changed

    # -- collecting -------------------------------------------------------------------------------
    def _collect_loop(self) -> None:
        db = None
        while True:
            try:
                if db is None:
                    from ...boinc.db import Database

                    db = Database.from_config(self.project.config)
                self._flush_cancellations(db)
                self.collect_once(db)
            except Exception as exc:  # keep collecting; a DB hiccup is logged
                log.warning("batch %s: collecting results failed: %s", self.batch, exc)
                if db is not None:
                    db.close()
                    db = None
            with self._lock:
                idle = not self._pending
            if self._stop.is_set() and idle:
                break
            self._wake.wait(self.poll_interval)
            self._wake.clear()
        if db is not None:
            db.close()

    def _flush_cancellations(self, db) -> None:
        with self._lock:
            ids, self._cancelled_ids = self._cancelled_ids, set()
        if ids:
            cancel_workunits(db, ids)
            log.info("batch %s: cancelled %d workunits", self.batch, len(ids))

    def collect_once(self, db) -> int:
        """Complete the futures whose workunits are assimilated; returns how many."""
        from ...boinc.states import AssimilateState

        with self._lock:
            pending = dict(self._pending)
        if not pending:
            return 0
        by_id = {wu_id: name for name, (_item, wu_id) in pending.items()}
        ids = sorted(by_id)
        done = 0
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ", ".join(["%s"] * len(chunk))
            rows = db.query(
                f"SELECT id, name, error_mask, canonical_resultid, assimilate_state "
                f"FROM workunit WHERE id IN ({marks}) AND assimilate_state=%s",
                (*chunk, int(AssimilateState.DONE)))
            for wu in rows:
                name = by_id[wu["id"]]
                item = pending[name][0]
                ok, value = self._outcome(db, wu)
                with self._lock:
                    self._pending.pop(name, None)
                if not item.future.set_running_or_notify_cancel():
                    continue
                item.started_at = item.started_at or item.submitted_at
                (item.set_result if ok else item.set_exception)(value)
                done += 1
        return done

    def _outcome(self, db, wu: dict) -> tuple[bool, Any]:
        from ...boinc.states import describe_error_mask

        try:
            record = self.store.record(wu["name"])
        except Exception as exc:  # an unreadable or oversized record
            return False, BoincPymwError(f"workunit {wu['name']}: results store record "
                                         f"is unusable: {exc}")
        if record is None:
            if wu["error_mask"]:
                detail, excerpt = failure_detail(db, wu)
                return False, WorkunitFailed(wu["name"], int(wu["error_mask"]),
                                             describe_error_mask(int(wu["error_mask"])),
                                             detail, excerpt)
            return False, BoincPymwError(
                f"workunit {wu['name']} was assimilated but the results store "
                f"{self.store.directory} has no record of it: is the boinc_pymw "
                f"result-collecting assimilator the one running for app {self.app_name} "
                f"(boinc_pymw daemon list)?")
        return outcome_from_record(record, db, wu)

    # -- end --------------------------------------------------------------------------------------
    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        self._closed = True
        if cancel_futures:
            with self._lock:
                items = [item for item, _ in self._pending.values()]
            for item in items:
                item.future.cancel()
        self._stop.set()
        self._wake.set()
        if wait:
            self._collector.join()
        elif cancel_futures:
            # cancellations must reach the database even when not waiting
            try:
                self._flush_cancellations(self.project.db)
            except BoincPymwError as exc:
                log.warning("batch %s: could not cancel workunits: %s", self.batch, exc)
        if wait:
            self.project.close()

    def status(self) -> dict:
        with self._lock:
            pending = len(self._pending)
        return {"workers": self.workers, "batch": self.batch, "batch_id": self.batch_id,
                "app": self.app_name, "pending_workunits": pending,
                "reattached": self.reattached}
