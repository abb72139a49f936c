"""The master side of the MPI back end: one thread that owns every MPI call.

    Master.submit/map --> Dispatcher.submit(items) --> pending deque
                                                          |
      dispatcher thread:  batch --cloudpickle--> Isend(TASKS) to a worker
                          Iprobe/Recv(RESULTS) --> item.future.set_result/_exception
                          Iprobe/Recv(HEARTBEAT) --> worker.last_seen (the first
                              one, sent as a worker starts serving, lets it get work)
                          no message from a worker for heartbeat_timeout s
                              --> WorkerLost on its items; it gets no more work

A worker holds only a short queue (about ``QUEUE_SECONDS`` of work, judged
from the measured time per task), so tiny tasks travel in big batches while
long tasks stay spread over all workers. The thread polls with a growing
sleep because MPICH's blocking calls spin a CPU that workers need.
"""

from __future__ import annotations

import collections
import math
import threading
import time
from typing import Optional

from . import _protocol as wire
from ...errors import RemoteTraceback, TaskError, WorkerLost

QUEUE_SECONDS = 0.05       # work queued at one worker, in measured task time
MIN_QUEUE, MAX_QUEUE = 2, 512
BATCH_BYTES = 4 << 20      # a TASKS message stays about this size at most
QUEUE_BYTES = 16 << 20     # and a worker's queue about this size
CHECK_EVERY = 0.25         # seconds between heartbeat checks
STARTUP_GRACE = 300.0      # extra seconds a rank may take to start serving


class RemoteWorker:
    """One worker rank as the master sees it."""

    def __init__(self, comm, rank: int, label: str):
        self.comm, self.rank, self.label = comm, rank, label
        self.inflight: dict = {}
        self.last_seen = time.monotonic()
        self.alive = True
        self.heard = False  # gets work only once it has said it serves
        self.initializer_sent = 0  # the Dispatcher's initializer generation it has


class Dispatcher:
    def __init__(self, MPI, workers: list, heartbeat_timeout: float, mode: str):
        self.MPI = MPI
        self.workers = workers
        self.mode = mode
        self.heartbeat_timeout = heartbeat_timeout
        self.lost: list[str] = []
        self._by_source = {(id(w.comm), w.rank): w for w in workers}
        self._comms = list({id(w.comm): w.comm for w in workers}.values())
        self._pending: collections.deque = collections.deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._sends: list = []  # (request, buffer, worker)
        self._stop_finalize: Optional[bool] = None
        self._crash: Optional[str] = None
        self._seconds_per_item: Optional[float] = None
        self._bytes_per_item = 0.0
        self._initializer: Optional[bytes] = None  # pickled (initializer, initargs)
        self._initializer_generation = 0
        self._thread = threading.Thread(target=self._run, name="boinc_pymw-mpi-dispatcher",
                                        daemon=True)
        self._thread.start()

    # -- called from user threads -----------------------------------------
    def submit(self, items) -> None:
        with self._lock:
            if self._stop_finalize is not None or not self.live_workers():
                why = self._crash or ("the MPI worker pool has stopped"
                                      if self._stop_finalize is not None
                                      else "no MPI worker is left: " + "; ".join(self.lost))
                for item in items:
                    item.set_exception(WorkerLost(why))
                return
            self._pending.extend(items)
        self._wake.set()

    def set_initializer(self, blob: Optional[bytes]) -> None:
        """Run ``blob`` (pickled ``(initializer, initargs)``; None for none) on
        each rank before the next tasks it gets: every Master sets its own."""
        with self._lock:
            if blob is None and self._initializer is None:
                return
            self._initializer = blob
            self._initializer_generation += 1

    def live_workers(self) -> list:
        """Workers that may get work (none once the dispatcher has crashed)."""
        if self._crash:
            return []
        return [w for w in self.workers if w.alive]

    def stop(self) -> None:
        """Send STOP to the live workers and end the thread. Workers are told
        to skip MPI_Finalize when a rank was lost (it would hang)."""
        with self._lock:
            if self._stop_finalize is None:
                self._stop_finalize = not self.lost
        self._wake.set()
        self._thread.join()
        if self._crash:  # the thread ended early: still release the worker ranks
            try:
                self._send_stop()
            except Exception:
                pass

    # -- the thread ---------------------------------------------------------
    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # a bug or an MPI error: fail loudly, never hang
            self._crashed(exc)

    def _crashed(self, exc: BaseException) -> None:
        why = f"the MPI back end's dispatcher failed: {type(exc).__name__}: {exc}"
        with self._lock:
            if self._stop_finalize is None:
                self._stop_finalize = False
            pending = list(self._pending)
            self._pending.clear()
        self.lost.append(why)
        self._crash = why
        for worker in self.workers:
            items = list(worker.inflight.values())
            worker.inflight.clear()
            for item in items:
                item.set_exception(WorkerLost(why))
        for item in pending:
            if item.mark_started():
                item.set_exception(WorkerLost(why))

    def _loop(self) -> None:
        MPI = self.MPI
        status = MPI.Status()
        backoff = wire.Backoff()
        next_check = time.monotonic() + CHECK_EVERY
        while True:
            active = False
            for comm in self._comms:
                while comm.Iprobe(source=MPI.ANY_SOURCE, tag=MPI.ANY_TAG, status=status):
                    source, tag, frames = wire.receive(MPI, comm, status)
                    self._handle(self._by_source[(id(comm), source)], tag, frames)
                    active = True
            if self._sends:
                self._sends = [s for s in self._sends if not MPI.Request.Testall(s[0])]
            if self._pending and self._dispatch():
                active = True
            now = time.monotonic()
            if now >= next_check:
                self._check_heartbeats(now)
                next_check = now + CHECK_EVERY
            if self._stop_finalize is not None:
                break
            if active:
                backoff.reset()
            elif not self._pending and not any(w.inflight for w in self.workers):
                if self._wake.wait(CHECK_EVERY):
                    self._wake.clear()
            else:
                longest, fast_for = self._poll_pace()
                backoff.wait(longest, fast_for)
        self._send_stop()

    def _handle(self, worker: RemoteWorker, tag: int, frames: list) -> None:
        worker.last_seen = time.monotonic()
        worker.heard = True
        if tag == wire.RESULTS:
            try:
                records, busy = wire.decode(frames)
            except BaseException as exc:  # values travel apart (PICKLED), so hardly ever
                records, busy = [(i, wire.FAILED, type(exc).__name__,
                                  f"the task's result could not be unpickled here: {exc}", "")
                                 for i in wire.decode_prefix(frames)], 0.0
            if records:
                per_item = busy / len(records)
                old = self._seconds_per_item
                self._seconds_per_item = per_item if old is None else 0.7 * old + 0.3 * per_item
            for record in records:
                item = worker.inflight.pop(record[0], None)
                if item is not None:  # None: a late answer from a rank declared lost
                    _finish(item, record)
        elif tag == wire.BYE:
            self._lose(worker, f"MPI worker {worker.label} stopped: {wire.decode(frames)}")

    def _poll_pace(self) -> tuple[float, float]:
        """(longest sleep between polls, how long to only yield first) while
        work is out: tiny tasks get a tight loop, long ones leave the CPU to
        the workers (the master usually shares the machine with them)."""
        per_item = self._seconds_per_item
        if per_item is None:
            return 1e-3, 0.005
        fast_for = 0.005 if per_item < 5e-4 else 0.0
        return max(50e-6, min(2e-3, per_item / 4)), fast_for

    def _queue_target(self) -> int:
        """How many items a worker may hold: ~QUEUE_SECONDS and ~QUEUE_BYTES."""
        if self._seconds_per_item is None:
            target = 8
        elif self._seconds_per_item <= 0:
            target = MAX_QUEUE
        else:
            target = math.ceil(QUEUE_SECONDS / self._seconds_per_item)
        if self._bytes_per_item > 0:
            target = min(target, int(QUEUE_BYTES // self._bytes_per_item))
        return max(MIN_QUEUE, min(MAX_QUEUE, target))

    def _dispatch(self) -> bool:
        live = [w for w in self.live_workers() if w.heard]
        target = self._queue_target()
        by_bytes = MAX_QUEUE if self._bytes_per_item <= 0 else \
            max(1, int(BATCH_BYTES // self._bytes_per_item))
        sent = False
        for index, worker in enumerate(live):
            room = target - len(worker.inflight)
            if room <= 0 or not self._pending:
                continue
            share = math.ceil(len(self._pending) / (len(live) - index))
            batch = []
            with self._lock:
                while self._pending and len(batch) < min(room, share, by_bytes):
                    item = self._pending.popleft()
                    if item.mark_started():
                        batch.append(item)
            if batch:
                if worker.initializer_sent != self._initializer_generation:
                    self._send_initializer(worker)
                self._send_batch(worker, batch)
                sent = True
        return sent

    def _send_initializer(self, worker: RemoteWorker) -> None:
        """INIT goes before the tasks: a rank handles messages in order."""
        with self._lock:
            blob, generation = self._initializer, self._initializer_generation
        frames = wire.encode(blob)
        requests = wire.isend(self.MPI, worker.comm, worker.rank, wire.INIT, frames)
        self._sends.append((requests, frames, worker))
        worker.initializer_sent = generation

    def _send_batch(self, worker: RemoteWorker, batch: list) -> None:
        try:
            frames = wire.encode(_calls(batch), prefix=[it.id for it in batch])
        except BaseException:
            good = []
            for it in batch:
                try:
                    wire.encode(_calls([it]))
                    good.append(it)
                except BaseException as exc:  # the pickler's own error is the cause
                    error = TaskError(
                        f"task could not be sent to an MPI worker (cannot pickle): "
                        f"{type(exc).__name__}: {exc}")
                    error.__cause__ = exc
                    it.set_exception(error)
            batch = good
            if not batch:
                return
            frames = wire.encode(_calls(batch), prefix=[it.id for it in batch])
        size = sum(len(f) for f in frames)
        self._bytes_per_item = 0.7 * self._bytes_per_item + 0.3 * (size / len(batch))
        requests = wire.isend(self.MPI, worker.comm, worker.rank, wire.TASKS, frames)
        self._sends.append((requests, frames, worker))
        for it in batch:
            worker.inflight[it.id] = it

    def _check_heartbeats(self, now: float) -> None:
        for worker in self.workers:
            if not worker.alive:
                continue
            if worker.heard and now - worker.last_seen > self.heartbeat_timeout:
                self._lose(worker, f"MPI worker {worker.label} sent nothing (not even a heartbeat) "
                                   f"for {self.heartbeat_timeout:g} s; it probably died")
            elif not worker.heard and now - worker.last_seen > STARTUP_GRACE + self.heartbeat_timeout:
                # With plain mpiexec a rank serves only once its copy of the
                # script reaches Master(); it holds no work until then.
                self._lose(worker, f"MPI worker {worker.label} never started serving "
                                   f"(waited {STARTUP_GRACE + self.heartbeat_timeout:g} s)")

    def _lose(self, worker: RemoteWorker, why: str) -> None:
        if not worker.alive:
            return
        worker.alive = False
        self.lost.append(why)
        items = list(worker.inflight.values())
        worker.inflight.clear()
        for item in items:
            item.set_exception(WorkerLost(f"{why}; task {item.id} had been sent to it"))
        if not self.live_workers():
            with self._lock:
                pending = list(self._pending)
                self._pending.clear()
            for item in pending:
                if item.mark_started():
                    item.set_exception(WorkerLost("no MPI worker is left: " + "; ".join(self.lost)))

    def _send_stop(self) -> None:
        MPI = self.MPI
        with self._lock:
            pending = list(self._pending)
            self._pending.clear()
        for item in pending:
            if item.mark_started():
                item.set_exception(WorkerLost("the MPI worker pool stopped before this task ran"))
        frames = wire.encode({"finalize": bool(self._stop_finalize)})
        for worker in [w for w in self.workers if w.alive]:
            for item in worker.inflight.values():
                item.set_exception(WorkerLost("the MPI worker pool stopped while this task ran"))
            worker.inflight.clear()
            requests = wire.isend(MPI, worker.comm, worker.rank, wire.STOP, frames)
            self._sends.append((requests, frames, worker))
        # Sends to lost ranks may never complete; wait only for the live ones.
        deadline = time.monotonic() + 10.0
        waiting = [s for s in self._sends if s[2].alive]
        while waiting and time.monotonic() < deadline:
            waiting = [s for s in waiting if not MPI.Request.Testall(s[0])]
            time.sleep(0.001)
        self._drain_until_stopped()

    def _drain_until_stopped(self) -> None:
        """Receive (and drop) what the live workers still send, up to their
        STOPPED: MPICH 4.1+ fails MPI_Finalize and Comm_disconnect while a
        message is unmatched. A worker sees STOP only after the tasks it holds,
        so it is waited for while it keeps sending heartbeats; one silent for
        ``heartbeat_timeout`` is declared lost (and MPI_Finalize skipped)."""
        MPI = self.MPI
        status = MPI.Status()
        backoff = wire.Backoff(longest=0.01)
        started = time.monotonic()
        waiting = {id(w): w for w in self.workers if w.alive}
        while waiting:
            for comm in self._comms:
                while comm.Iprobe(source=MPI.ANY_SOURCE, tag=MPI.ANY_TAG, status=status):
                    source, tag, _frames = wire.receive(MPI, comm, status)
                    worker = self._by_source[(id(comm), source)]
                    worker.last_seen = time.monotonic()
                    if tag in (wire.STOPPED, wire.BYE):
                        waiting.pop(id(worker), None)
                    backoff.reset()
            now = time.monotonic()
            for worker in list(waiting.values()):
                if now - max(worker.last_seen, started) > self.heartbeat_timeout:
                    waiting.pop(id(worker))
                    self._lose(worker, f"MPI worker {worker.label} did not answer STOP "
                                       f"(nothing from it for {self.heartbeat_timeout:g} s)")
            if waiting:
                backoff.wait()


def _calls(batch: list) -> list:
    return [(it.id, it.fn, it.args, it.kwargs, it.timeout) for it in batch]


def _finish(item, record) -> None:
    kind = record[1]
    if kind == wire.OK:
        item.set_result(record[2])
    elif kind in (wire.PICKLED, wire.RAISED):
        try:  # the one place a result's own code runs in the master
            value = wire.loads(record[2])
        except BaseException as exc:  # even SystemExit: this task fails, the loop goes on
            error = TaskError(f"the result of task {item.id} cannot be unpickled in the "
                              f"master: {exc!r}")
            error.__cause__ = exc
            item.set_exception(error)
            return
        if kind == wire.PICKLED:
            item.set_result(value)
        elif isinstance(value, BaseException):
            value.__cause__ = RemoteTraceback(record[3])
            item.set_exception(value)
        else:
            item.set_exception(TaskError(f"task {item.id} failed with {value!r}, "
                                         f"which is not an exception"))
    else:
        _, _, type_name, message, tb = record
        exc = TaskError(f"{type_name}: {message}")
        if tb:
            exc.__cause__ = RemoteTraceback(tb)
        item.set_exception(exc)
