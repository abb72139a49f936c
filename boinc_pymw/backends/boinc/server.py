"""The BOINC back end: each call becomes a workunit of one named batch.

Data flow::

    Master.submit / map --> one call (never chunked: default_chunksize=1)
        |  encode_task(fn, args, kwargs): {"function": "mod:qualname", "args", "kwargs"}
        |  (JSON only: the code comes from the installed app version)
        v
    workunit "<batch>_<n>" (n = call index in this Master), input file
    "<batch>_<n>.json" staged in the download hierarchy, created with the
    app's own templates (templates/<app>_in, templates/<app>_out); the data
    files of submit_task(data_files=...) are more inputs, copied into the
    slot under their base names (_data_files: the app's template plus them)
        |
        v  BOINC: transitioner -> scheduler -> volunteers -> validator ->
        |         result-collecting assimilator (daemons/) -> results store
        v
    collector thread, every poll_interval:
        SELECT id FROM workunit WHERE appid=? AND assimilate_state=DONE
               AND id BETWEEN lo AND hi          (index wu_assim, one range per
                                                  block of ids still awaited)
          -> results store record (untrusted JSON, size-limited) -> decode_output
          -> future / map stream
        a failed workunit -> WorkunitFailed (error_mask decoded + stderr excerpt)

A million calls: ``map`` streams (:meth:`BoincBackend.map_stream`): calls
are taken from the iterables as a BOINC work generator would, in chunks of
``CREATE_CHUNK``, while fewer than ``high_water`` workunits of the Master are
unsent; no future exists per call, only a small entry per workunit in
flight and the finished results not yet consumed. A poll costs what
finished since the last one (plus the finished ones inside blocks that still
have work out), not what is pending: assimilated workunits are found through
the ``(appid, assimilate_state)`` index, within the id ranges of the blocks
the Master still waits for.

Reattaching: a Master given an existing batch name looks its calls up by
workunit name (a unique key), a chunk at a time. A call whose workunit
exists is not submitted again if its input has the same md5 as the one the
workunit's xml_doc lists, else it is refused; a call whose rows were purged
(BOINC's db_purge) but whose results-store record exists completes from the
record and is never run again.

Cancelling a future (or ``shutdown(cancel_futures=True)``, closing a map's
iterator, or :meth:`BoincBackend.cancel_batch`) cancels its workunits as
BOINC's ``cancel_jobs`` does (see :func:`cancel_workunits`).

A batch with nothing making progress for ``stall_warning`` seconds makes the
Master check the app's daemons (:mod:`.daemon_watch`) and warn once per
daemon that is not running, quoting its log.

The database driver is imported only when a back end is created.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import itertools
import logging
import re
import sys
import threading
import time
from concurrent.futures import Future
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence

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

#: default bound on the Master's unsent workunits (see map_stream)
DEFAULT_HIGH_WATER = 20_000
#: calls created per transaction by a streaming map
CREATE_CHUNK = 1000
#: ids a block of awaited workunits may span; a poll scans one range per few blocks
BLOCK_SPAN = 4096
#: most id ranges one poll queries (closer ranges are merged)
MAX_RANGES = 32
#: ids read per query when scanning a range
SCAN_LIMIT = 20_000
#: finished calls read and delivered at a time within one poll
DELIVER_CHUNK = 1000

_MD5 = re.compile(r"<md5_cksum>\s*([0-9a-fA-F]{32})\s*</md5_cksum>")


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


def batch_workunit_ids(db, batch_id: int, chunk: int = 50_000) -> Iterator[int]:
    """Ids of the batch's workunits, read a chunk at a time (a batch may hold millions)."""
    last = 0
    while True:
        rows = db.query("SELECT id FROM workunit WHERE batch=%s AND id>%s ORDER BY id LIMIT %s",
                        (batch_id, last, chunk))
        for row in rows:
            yield row["id"]
        if len(rows) < chunk:
            return
        last = rows[-1]["id"]


def update_batch_state(db, batch_id: int, now: Optional[float] = None) -> Optional[dict]:
    """Progress and completion of a batch, as BOINC's ``get_batch_params``
    (html/inc/submit_util.inc) computes them, written to its row.

    A batch in progress whose workunits are all assimilated becomes
    BATCH_STATE_COMPLETE with ``completion_time = now``. Workunit rows removed
    by db_purge were assimilated (it purges only after file deletion), so they
    count as finished. Returns the batch row as updated (None: no such batch).
    """
    batch = db.query_one("SELECT id, state, njobs, completion_time FROM batch WHERE id=%s",
                         (batch_id,))
    if batch is None:
        return None
    agg = db.query_one(
        "SELECT COUNT(*) AS n, COALESCE(SUM(assimilate_state<>2), 0) AS open, "
        "COALESCE(SUM(canonical_resultid<>0), 0) AS good, "
        "COALESCE(SUM(canonical_resultid=0 AND error_mask<>0), 0) AS errors, "
        "COALESCE(SUM(rsc_fpops_est), 0) AS fp_total, "
        "COALESCE(SUM(IF(canonical_resultid<>0, rsc_fpops_est, 0)), 0) AS fp_done, "
        "COALESCE(SUM(IF(canonical_resultid<>0, canonical_credit, 0)), 0) AS credit "
        "FROM workunit WHERE batch=%s", (batch_id,))
    rows, open_ = int(agg["n"]), int(agg["open"])
    purged = max(0, int(batch["njobs"] or 0) - rows)
    if purged:
        fraction = (int(agg["good"]) + purged) / max(1, rows + purged)
    else:
        fraction = float(agg["fp_done"]) / float(agg["fp_total"]) if agg["fp_total"] else 0.0
    state, completion = int(batch["state"]), float(batch["completion_time"] or 0)
    if state == BATCH_STATE_IN_PROGRESS and open_ == 0 and rows + purged > 0:
        state, completion = BATCH_STATE_COMPLETE, float(time.time() if now is None else now)
    db.execute("UPDATE batch SET fraction_done=%s, nerror_jobs=%s, state=%s, "
               "completion_time=%s, credit_canonical=%s WHERE id=%s",
               (fraction, int(agg["errors"]), state, completion, float(agg["credit"]),
                batch_id))
    batch.update(state=state, completion_time=completion, fraction_done=fraction,
                 nerror_jobs=int(agg["errors"]))
    return batch


# -- what the Master waits for -----------------------------------------------------------
class _Block:
    """Consecutive awaited workunit ids (rising, at most BLOCK_SPAN apart)."""

    __slots__ = ("ids", "first", "hi", "live")

    def __init__(self, wu_id: int):
        self.ids = collections.deque([wu_id])
        self.first = self.hi = wu_id
        self.live = 1

    def lowest(self, waiting: dict) -> Optional[int]:
        """The lowest id still awaited (the ids below it need no scan any more)."""
        ids = self.ids
        while ids and ids[0] not in waiting:
            ids.popleft()
        return ids[0] if ids else None


class _Blocks:
    """Id ranges of the workunits still awaited: a poll scans only these.

    Workunits are created with rising ids, so consecutive ones share a block;
    a block starts at its lowest id still awaited and is dropped when nothing
    in it is awaited any more. Finished calls below the lowest awaited one are
    never scanned again.
    """

    def __init__(self):
        self.blocks: list[_Block] = []

    def add(self, wu_id: int) -> _Block:
        last = self.blocks[-1] if self.blocks else None
        if last is not None and last.live > 0 and last.hi < wu_id < last.first + BLOCK_SPAN:
            last.ids.append(wu_id)
            last.hi = wu_id
            last.live += 1
            return last
        block = _Block(wu_id)
        self.blocks.append(block)
        return block

    def ranges(self, waiting: dict) -> list[tuple[int, int]]:
        self.blocks = [b for b in self.blocks if b.live > 0]
        spans = sorted((lo, b.hi) for b in self.blocks
                       for lo in [b.lowest(waiting)] if lo is not None)
        merged: list[list[int]] = []
        for lo, hi in spans:
            if merged and lo - merged[-1][1] <= BLOCK_SPAN:
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])
        while len(merged) > MAX_RANGES:     # close the smallest gap
            gaps = [merged[i + 1][0] - merged[i][1] for i in range(len(merged) - 1)]
            i = gaps.index(min(gaps))
            merged[i:i + 2] = [[merged[i][0], max(merged[i][1], merged[i + 1][1])]]
        return [(lo, hi) for lo, hi in merged]

    def lowest(self, waiting: dict) -> Optional[int]:
        live = [lo for b in self.blocks if b.live > 0 for lo in [b.lowest(waiting)]
                if lo is not None]
        return min(live) if live else None


class _MapStream:
    """One streaming ``map``: results by call position until they are consumed."""

    def __init__(self):
        self.cond = threading.Condition()
        self.results: dict[int, tuple[bool, Any]] = {}
        self.fed = 0                 # positions taken from the iterables
        self.exhausted = False       # no more positions will come
        self.error: Optional[BaseException] = None   # raised at position ``fed``
        self.closed = False

    def deliver(self, outcomes: list) -> None:
        with self.cond:
            for pos, ok, value in outcomes:
                self.results[pos] = (ok, value)
            self.cond.notify_all()

    def iterate(self, deadline: Optional[float], on_close: Callable[[], None]):
        pos = 0
        try:
            while True:
                with self.cond:
                    while pos not in self.results:
                        if pos >= self.fed and (self.exhausted or self.error is not None):
                            if self.error is not None:
                                raise self.error
                            return
                        remaining = None if deadline is None else deadline - time.monotonic()
                        if remaining is not None and remaining <= 0:
                            raise TimeoutError()
                        self.cond.wait(remaining)
                    ok, value = self.results.pop(pos)
                pos += 1
                if not ok:
                    raise value
                yield value
        finally:
            on_close()


# -- the back end ---------------------------------------------------------------------------
class BoincBackend(Backend):
    """Run each call as a BOINC workunit of one named batch (see module docstring)."""

    name = "boinc"
    default_chunksize = 1
    #: submit_task(data_files=...): extra input files of the workunit (_data_files)
    data_files = "copy"
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
                 high_water: int = DEFAULT_HIGH_WATER, stall_warning: Optional[float] = None,
                 **options: Any):
        wu_fields = {k: options.pop(k) for k in self.extra_options if k in options}
        super().__init__(workers, **options)
        from ...boinc.project import Project

        self.project = Project(project)
        self.app_name = app
        self.app = self.project.app(app)
        self.poll_interval = float(poll_interval)
        self.high_water = int(high_water)
        if self.high_water < 1:
            raise BoincPymwError(f"high_water must be at least 1, not {high_water!r}")
        self.stall_warning = float(stall_warning) if stall_warning is not None else \
            max(120.0, 12 * self.poll_interval)
        generated = batch is None
        self.batch = check_batch_name(batch or new_batch_name())
        self.wu_fields = {k: v for k, v in wu_fields.items() if v is not None}
        self._lock = threading.Lock()           # the awaited workunits, indices
        self._create_lock = threading.Lock()    # self.project.db: creation, look-ups
        self._next_index = 0
        # wu id -> (call index, WorkItem or _MapStream, position in the map, block)
        self._waiting: dict[int, tuple] = {}
        self._blocks = _Blocks()
        self._cancelled_ids: set[int] = set()
        self._streams: list[tuple[_MapStream, threading.Thread]] = []
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._progress = threading.Event()      # something finished: room to create more
        self._closed = False
        self._unsent_checked = 0.0            # when the unsent workunits were last counted
        self._unsent_counted = 0
        self._created = 0                      # workunits this Master created
        self._created_at_count = 0
        self._last_progress = time.monotonic()
        self._daemon_baseline: Optional[dict] = None
        self._warned: set[str] = set()
        self._completed_since_state = False
        row = find_batch(self.project.db, self.batch, self.app["id"])
        self.reattached = row is not None
        self.batch_id = row["id"] if row else create_batch_row(self.project.db, self.batch,
                                                               self.app["id"])
        from .results_store import batch_group

        self.store = ResultsStore(results_dir or self.default_results_dir(),
                                  batch_group(self.batch_id))
        if generated:
            print(f"boinc_pymw: batch {self.batch} (reattach with --batch {self.batch})",
                  file=sys.stderr)
        log.info("batch %s (id %s) of app %s: %s", self.batch, self.batch_id, app,
                 "reattached" if self.reattached else "new")
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
        if not any("--high-water" in a.option_strings for a in parser._actions):
            group.add_argument("--high-water", type=int, default=None, metavar="N",
                               help="-i boinc: a map creates workunits while fewer than N of "
                                    f"its workunits are unsent (default {DEFAULT_HIGH_WATER})")

    @classmethod
    def options_from_args(cls, args: argparse.Namespace) -> dict:
        options = {}
        for key in ("project", "app", "batch", "results_dir", "high_water"):
            value = getattr(args, key, None)
            if value is not None:
                options[key] = value
        from .remote import RemoteBoincBackend

        options.update(RemoteBoincBackend.options_from_args(args))
        return options

    # -- where the assimilator keeps results -------------------------------------------------------
    def default_results_dir(self):
        """The ``--store`` of the app's result-store assimilator in config.xml,
        else that assimilator's default; warns when none is configured."""
        from .results_store import configured_store_dir

        path, configured = configured_store_dir(self.project, self.app_name)
        if not configured:
            log.warning("config.xml of %s lists no result-store assimilator for app %s: "
                        "futures complete only once one runs (boinc_pymw daemon add "
                        "result_store_assimilator --app %s)", self.project.path,
                        self.app_name, self.app_name)
        return path

    # -- work ----------------------------------------------------------------------------------
    def submit(self, items: Sequence[WorkItem]) -> None:
        if self._closed:
            raise RuntimeError("cannot submit to a BOINC back end after shutdown")
        calls = []
        with self._lock:
            base = self._next_index
            self._next_index += len(items)
        for offset, item in enumerate(items):
            try:
                calls.append((base + offset, item, 0, self._encode(item)))
            except Exception as exc:  # not JSON / not importable: this call fails
                item.set_exception(exc)
        try:
            placed = self._place(calls, strict=True)
        except BaseException as exc:
            # nothing of this call was submitted: no future may wait forever
            for item in items:
                item.set_exception(exc)
            raise
        for wu_id, item in placed:
            item.future.add_done_callback(self._on_done_callback(wu_id))
        self._wake.set()

    def map_stream(self, fn: Callable, iterables: Sequence[Iterable], *,
                   timeout: Optional[float] = None, task_timeout: Optional[float] = None):
        """``Executor.map`` for a million calls: an iterator of results in call order.

        Workunits are created by a feeder thread as a BOINC work generator
        would: ``CREATE_CHUNK`` at a time, while the Master's unsent
        workunits stay under ``high_water``. The iterables are read lazily;
        a call that raised raises at its place; closing the iterator early
        cancels the workunits not finished yet.
        """
        if self._closed:
            raise RuntimeError("cannot submit to a BOINC back end after shutdown")
        deadline = None if timeout is None else time.monotonic() + timeout
        stream = _MapStream()
        feeder = threading.Thread(target=self._feed, args=(stream, fn, iterables),
                                  name=f"boinc-feeder-{self.batch}", daemon=True)
        with self._lock:
            self._streams.append((stream, feeder))
        feeder.start()
        return stream.iterate(deadline, lambda: self._close_stream(stream))

    def _encode(self, item: WorkItem) -> bytes:
        from ._data_files import split_call

        fn, args, kwargs, files = split_call(item)
        if files:
            from ._submit import call_input

            return call_input(self.project, self.app_name, self.wu_fields, fn, args, kwargs,
                              files)
        return encode_input(encode_call(item))

    def _feed(self, stream: _MapStream, fn: Callable, iterables: Sequence[Iterable]) -> None:
        from ...worker import encode_task, function_reference

        calls_iter = zip(*iterables)
        try:
            reference = function_reference(fn)   # a lambda fails the whole map, at once
            while not stream.closed:
                room = self._room()
                if room <= 0:
                    self._progress.wait(self.poll_interval)
                    self._progress.clear()
                    continue
                batch = list(itertools.islice(calls_iter, min(room, CREATE_CHUNK)))
                if not batch:
                    break
                with self._lock:
                    base = self._next_index
                    self._next_index += len(batch)
                calls, failed = [], []
                for k, args in enumerate(batch):
                    pos = stream.fed + k
                    try:
                        data = encode_input(encode_task(reference, args))
                    except Exception as exc:  # this call fails at its place
                        failed.append((pos, False, exc))
                        continue
                    calls.append((base + k, stream, pos, data))
                if failed:
                    stream.deliver(failed)
                try:
                    self._place(calls, strict=False)
                except BaseException as exc:    # database down, disk full: this map stops
                    log.warning("batch %s: creating workunits failed: %s", self.batch, exc)
                    with stream.cond:
                        stream.fed += len(batch)
                        stream.error = stream.error or exc
                        for pos in range(stream.fed - len(batch), stream.fed):
                            stream.results.setdefault(pos, (False, exc))
                        stream.cond.notify_all()
                    return
                with stream.cond:
                    stream.fed += len(batch)
                    stream.cond.notify_all()
                self._wake.set()
        except Exception as exc:   # the caller's iterable raised: the map raises it there
            with stream.cond:
                stream.error = exc
                stream.cond.notify_all()
        finally:
            with stream.cond:
                stream.exhausted = True
                stream.cond.notify_all()
            self._wake.set()

    def _room(self) -> int:
        """How many more workunits may be created now (the high-water mark).

        While fewer than ``high_water`` workunits are awaited, no SQL is
        needed; above it, the unsent ones are counted (at most once per
        poll interval) as BOINC's work generators count unsent results.
        """
        with self._lock:
            awaited = len(self._waiting)
            lowest = self._blocks.lowest(self._waiting)
        if awaited < self.high_water:
            return self.high_water - awaited
        now = time.monotonic()
        if now - self._unsent_checked >= self.poll_interval:
            self._unsent_checked = now
            with self._create_lock:
                self._unsent_counted = self._count_unsent(self.project.db, lowest or 0)
                self._created_at_count = self._created
        # what was created since the count is unsent too
        return self.high_water - self._unsent_counted - (self._created - self._created_at_count)

    def _count_unsent(self, db, lowest_id: int) -> int:
        """Awaited workunits none of whose results was sent yet (or that have none)."""
        row = db.query_one(
            "SELECT COUNT(*) AS n FROM workunit w WHERE w.batch=%s AND w.id>=%s "
            "AND w.assimilate_state<>2 AND NOT EXISTS (SELECT 1 FROM result r "
            "WHERE r.workunitid=w.id AND r.server_state>2)", (self.batch_id, lowest_id))
        return int(row["n"])

    def _place(self, calls: list, strict: bool) -> list:
        """Create the workunits of ``calls`` [(index, target, position, input bytes)]
        (reattaching: find the existing ones first) and await them.

        Returns [(wu id, target)] of what is now awaited. ``strict``: a call whose
        input differs from its workunit's raises (else it fails at its place).
        """
        if not calls:
            return []
        from ._submit import create_workunits

        ready, new = [], []
        with self._create_lock:
            existing = self._lookup([workunit_name(self.batch, c[0]) for c in calls]) \
                if self.reattached else {}
            finished = []
            for call in calls:
                index, target, pos, data = call
                name = workunit_name(self.batch, index)
                row = existing.get(name)
                if row is not None:
                    problem = self._input_problem(name, row, data)
                    if problem is not None:
                        if strict:
                            raise problem
                        finished.append((target, pos, False, problem))
                        continue
                    if row["assimilate_state"] == 2:     # finished: no poll needed
                        record = self._stored_record(name)
                        if record is not None and record.get("status") == "done":
                            ok, value = outcome_from_record(record)
                            finished.append((target, pos, ok, value))
                            continue
                    ready.append((row["id"], call))
                    continue
                if self.reattached:
                    record = self._stored_record(name)
                    if record is not None:       # purged by db_purge, finished before
                        ok, value = outcome_from_record(record)
                        finished.append((target, pos, ok, value))
                        continue
                new.append(call)
            if new:
                ids = create_workunits(self.project, self.app, self.app_name, self.batch_id,
                                       [(workunit_name(self.batch, c[0]), c[3]) for c in new],
                                       self.wu_fields)
                ready += [(ids[workunit_name(self.batch, c[0])], c) for c in new]
                self._created += len(new)
        placed = []
        with self._lock:
            for wu_id, (index, target, pos, _data) in sorted(ready, key=lambda r: r[0]):
                self._waiting[wu_id] = (index, target, pos, self._blocks.add(wu_id))
                placed.append((wu_id, target))
            self._last_progress = time.monotonic()
        self._deliver(finished)
        return placed

    def _lookup(self, names: list[str]) -> dict[str, dict]:
        """Existing workunits by name (``workunit.name`` is a unique key)."""
        found = {}
        for start in range(0, len(names), 1000):
            chunk = names[start:start + 1000]
            marks = ", ".join(["%s"] * len(chunk))
            for row in self.project.db.query(
                    f"SELECT id, name, batch, assimilate_state, xml_doc FROM workunit "
                    f"WHERE name IN ({marks})",
                    tuple(chunk)):
                found[row["name"]] = row
        return found

    def _input_problem(self, name: str, row: dict, data: bytes) -> Optional[Exception]:
        """Why call ``name`` may not reuse workunit ``row`` (None: it may)."""
        if row["batch"] != self.batch_id:
            return BoincPymwError(f"workunit {name} exists but belongs to another batch "
                                  f"(id {row['batch']}); use another batch name")
        doc = row.get("xml_doc") or ""
        if isinstance(doc, bytes):
            doc = doc.decode("utf-8", "replace")
        listed = {m.lower() for m in _MD5.findall(doc)}
        if listed:
            needed = {hashlib.md5(data).hexdigest()}
            needed.update(d.md5 for d in getattr(data, "data_files", ()))
            if needed <= listed:
                return None
            return changed_input_error(self.batch, name,
                                       self.project.download_path(input_file_name(name)))
        path = self.project.download_path(input_file_name(name))
        try:
            with open(path, "rb") as f:
                old = f.read()
        except OSError:
            return None    # the input was already deleted by the file_deleter: trust the name
        return None if old == data else changed_input_error(self.batch, name, path)

    def _stored_record(self, name: str) -> Optional[dict]:
        try:
            return self.store.record(name)
        except BoincPymwError:
            return None

    def _on_done_callback(self, wu_id: int) -> Callable[[Future], None]:
        def callback(future: Future) -> None:
            if future.cancelled():
                self._forget([wu_id])
        return callback

    def _forget(self, wu_ids: Iterable[int]) -> None:
        """Stop awaiting ``wu_ids`` and cancel their workunits (at the next poll)."""
        with self._lock:
            for wu_id in wu_ids:
                entry = self._waiting.pop(wu_id, None)
                if entry is not None:
                    entry[3].live -= 1
                    self._cancelled_ids.add(wu_id)
        self._wake.set()

    def _close_stream(self, stream: _MapStream) -> None:
        """The map's iterator was closed or finished: cancel what it still awaits."""
        with stream.cond:
            stream.closed = True
        with self._lock:
            ids = [wu_id for wu_id, entry in self._waiting.items() if entry[1] is stream]
        if ids:
            self._forget(ids)

    def cancel(self, item: WorkItem) -> bool:
        return item.future.cancel()   # the done callback cancels the workunit

    def _cancel_pending(self) -> None:
        """Close every map stream and cancel every awaited future of this Master."""
        with self._lock:
            entries = list(self._waiting.values())
            streams = [s for s, _t in self._streams]
        for stream in streams:
            self._close_stream(stream)
        for _index, target, _pos, _block in entries:
            if isinstance(target, WorkItem):
                target.future.cancel()

    def cancel_batch(self) -> int:
        """Cancel every workunit of this batch (pending futures and maps are cancelled)."""
        self._cancel_pending()
        with self._create_lock:
            db = self.project.db
            changed = cancel_workunits(db, list(batch_workunit_ids(db, self.batch_id)))
            db.execute("UPDATE batch SET state=%s WHERE id=%s",
                       (BATCH_STATE_ABORTED, self.batch_id))
        return changed

    # -- collecting -------------------------------------------------------------------------------
    def _collect_loop(self) -> None:
        db = None
        while True:
            started = time.monotonic()
            try:
                if db is None:
                    from ...boinc.db import Database

                    db = Database.from_config(self.project.config)
                self._flush_cancellations(db)
                self.collect_once(db)
                self._after_poll(db)
            except Exception as exc:  # keep collecting; a DB hiccup is logged
                log.warning("batch %s: collecting results failed: %s", self.batch, exc)
                if db is not None:
                    db.close()
                    db = None
            if self._stop.is_set() and self._idle():
                break
            # polls start every poll_interval, however long one took: a call
            # assimilated just after a poll's query waits one interval, not
            # one interval plus the poll
            self._wake.wait(max(0.0, self.poll_interval - (time.monotonic() - started)))
            self._wake.clear()
        if db is not None:
            try:
                self._flush_cancellations(db)
            except Exception as exc:  # noqa: BLE001 - reported, nothing else to do
                log.warning("batch %s: could not cancel workunits: %s", self.batch, exc)
            db.close()

    def _idle(self) -> bool:
        with self._lock:
            feeding = any(t.is_alive() for _s, t in self._streams)
            return not self._waiting and not feeding

    def _flush_cancellations(self, db) -> None:
        with self._lock:
            ids, self._cancelled_ids = self._cancelled_ids, set()
        if ids:
            cancel_workunits(db, ids)
            log.info("batch %s: cancelled %d workunits", self.batch, len(ids))

    def collect_once(self, db) -> int:
        """Complete what was assimilated since the last poll; returns how many.

        Each range of awaited ids is scanned in the ``(appid,
        assimilate_state)`` index: the cost follows the workunits that
        finished, not the ones still pending.
        """
        from ...boinc.states import AssimilateState

        with self._lock:
            ranges = self._blocks.ranges(self._waiting)
        done = 0
        for lo, hi in ranges:
            last = lo - 1
            while True:
                rows = db.query(
                    "SELECT id FROM workunit WHERE appid=%s AND assimilate_state=%s "
                    "AND id>%s AND id<=%s ORDER BY id LIMIT %s",
                    (self.app["id"], int(AssimilateState.DONE), last, hi, SCAN_LIMIT))
                waiting = self._waiting
                hits = [r["id"] for r in rows if r["id"] in waiting]
                for start in range(0, len(hits), DELIVER_CHUNK):   # the first ones need
                    done += self._complete(db, hits[start:start + DELIVER_CHUNK])  # no wait
                if len(rows) < SCAN_LIMIT:
                    break
                last = rows[-1]["id"]
        if done:
            self._last_progress = time.monotonic()
            self._completed_since_state = True
            self._progress.set()
        return done

    def _complete(self, db, wu_ids: list[int]) -> int:
        """Finish the calls of assimilated workunits ``wu_ids`` from the results store."""
        with self._lock:
            entries = []
            for wu_id in wu_ids:
                entry = self._waiting.pop(wu_id, None)
                if entry is not None:
                    entry[3].live -= 1
                    entries.append((wu_id, entry))
        outcomes = []
        for wu_id, (index, target, pos, _block) in entries:
            name = workunit_name(self.batch, index)
            ok, value = self._outcome(db, wu_id, name)
            outcomes.append((target, pos, ok, value))
        self._deliver(outcomes)
        return len(outcomes)

    def _deliver(self, outcomes: list) -> None:
        by_stream: dict[int, tuple[_MapStream, list]] = {}
        for target, pos, ok, value in outcomes:
            if isinstance(target, _MapStream):
                by_stream.setdefault(id(target), (target, []))[1].append((pos, ok, value))
                continue
            if not target.future.set_running_or_notify_cancel():
                continue
            target.started_at = target.started_at or target.submitted_at
            (target.set_result if ok else target.set_exception)(value)
        for stream, items in by_stream.values():
            stream.deliver(items)

    def _outcome(self, db, wu_id: int, name: str) -> tuple[bool, Any]:
        from ...boinc.states import describe_error_mask

        try:
            record = self.store.record(name)
        except Exception as exc:  # an unreadable or oversized record
            return False, BoincPymwError(f"workunit {name}: results store record "
                                         f"is unusable: {exc}")
        wu = None
        if record is None or record.get("status") != "done":
            wu = db.query_one("SELECT id, name, error_mask, canonical_resultid FROM workunit "
                              "WHERE id=%s", (wu_id,))
        if record is None:
            if wu is not None and wu["error_mask"]:
                detail, excerpt = failure_detail(db, wu)
                return False, WorkunitFailed(name, int(wu["error_mask"]),
                                             describe_error_mask(int(wu["error_mask"])),
                                             detail, excerpt)
            return False, BoincPymwError(
                f"workunit {name} was assimilated but the results store "
                f"{self.store.directory} has no record of it: is the boinc_pymw "
                f"result-collecting assimilator the one running for app {self.app_name} "
                f"(boinc_pymw daemon list)?")
        return outcome_from_record(record, db, wu)

    def _after_poll(self, db) -> None:
        """Batch completion, and a warning when nothing moves while daemons are down."""
        if self._completed_since_state and self._idle():
            self._completed_since_state = False
            update_batch_state(db, self.batch_id)
        with self._lock:
            waiting = bool(self._waiting)
        stalled = waiting and time.monotonic() - self._last_progress >= self.stall_warning
        if not stalled:
            self._daemon_baseline = None
            return
        self.check_daemons()

    def check_daemons(self) -> list:
        """Warn once per daemon of the app that is not running or keeps restarting;
        returns the app's daemon states."""
        from .daemon_watch import app_daemons

        states = app_daemons(self.project, self.app_name)
        if self._daemon_baseline is None:
            self._daemon_baseline = {s.cmd: s.starts for s in states}
        if not states and "none" not in self._warned:
            self._warned.add("none")
            log.warning("batch %s: no progress for %.0f s and config.xml of %s lists no "
                        "daemon for app %s (a validator and the result_store assimilator "
                        "are needed)", self.batch, self.stall_warning, self.project.path,
                        self.app_name)
        for state in states:
            restarts = state.starts - self._daemon_baseline.get(state.cmd, state.starts)
            if state.disabled or state.cmd in self._warned:
                continue
            if state.running is False or restarts >= 2:
                self._warned.add(state.cmd)
                how = "keeps exiting" if (restarts >= 2 or state.starts > 1) else "is not running"
                quoted = "\n".join("    " + line for line in state.last_lines) or "    (empty)"
                log.warning("batch %s: no progress for %.0f s; daemon %s of app %s %s "
                            "(%s). Last lines of %s:\n%s", self.batch, self.stall_warning,
                            state.program, self.app_name, how, state.cmd, state.log_path,
                            quoted)
        return states

    # -- end --------------------------------------------------------------------------------------
    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        self._closed = True
        if cancel_futures:
            self._cancel_pending()
        self._stop.set()
        self._wake.set()
        if wait:
            with self._lock:
                feeders = [t for _s, t in self._streams]
            for feeder in feeders:
                feeder.join()
            self._collector.join()
        elif cancel_futures:
            # cancellations must reach the database even when not waiting
            try:
                with self._create_lock:
                    self._flush_cancellations(self.project.db)
            except BoincPymwError as exc:
                log.warning("batch %s: could not cancel workunits: %s", self.batch, exc)
        if wait:
            self.project.close()

    def status(self) -> dict:
        with self._lock:
            pending = len(self._waiting)
        return {"workers": self.workers, "batch": self.batch, "batch_id": self.batch_id,
                "app": self.app_name, "pending_workunits": pending,
                "reattached": self.reattached}
