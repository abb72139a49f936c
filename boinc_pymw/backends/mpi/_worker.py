"""The loop a worker rank runs: receive task batches, run them, send results.

    master rank --TASKS--> [local queue] --> run one call at a time
                                              |  (per-call timeout: SIGALRM)
    master rank <--RESULTS-- flushed every ~10 ms or when the queue empties
    master rank <--HEARTBEAT-- a small thread, every HEARTBEAT_INTERVAL s

The heartbeat lets the master notice a rank that died (killed, crashed,
``os._exit``) even though MPICH reports nothing about it; see ``mpi.py``.

Run as ``python -m boinc_pymw.backends._worker`` by ``MPI_Comm_spawn``
(the parent intercommunicator leads to the master), or called as
:func:`serve` on ranks 1..N of an ``mpiexec`` job.
"""

from __future__ import annotations

import collections
import signal
import threading
import time
import traceback
from concurrent.futures import BrokenExecutor
from typing import Optional

from . import _protocol as wire
from ...errors import TaskTimeout

FLUSH_SECONDS = 0.002


class _Heartbeat(threading.Thread):
    def __init__(self, MPI, comm, master: int, interval: float):
        super().__init__(name="boinc_pymw-mpi-heartbeat", daemon=True)
        self.MPI, self.comm, self.master, self.interval = MPI, comm, master, interval
        self.stopped = threading.Event()

    def run(self):
        empty = bytearray()
        while True:  # the first one at once: it tells the master this rank serves
            self.comm.Send([empty, self.MPI.BYTE], dest=self.master, tag=wire.HEARTBEAT)
            if self.stopped.wait(self.interval):
                return

    def stop(self):
        self.stopped.set()
        self.join()


def _alarm(signum, frame):
    raise TaskTimeout("task ran longer than its timeout and was interrupted")


def _run_one(call) -> tuple:
    item_id, fn, args, kwargs, timeout = call
    use_alarm = timeout is not None and threading.current_thread() is threading.main_thread()
    try:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, max(timeout, 1e-3))
        try:
            value = fn(*args, **kwargs)
        finally:
            if use_alarm:
                signal.setitimer(signal.ITIMER_REAL, 0)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # the task's own failure (even SystemExit) is its answer
        return wire.raised_record(item_id, exc)
    return wire.value_record(item_id, value)


def _run_initializer(frames) -> Optional[BaseException]:
    """Run the Master's initializer; None, or the error every later task of
    this rank answers with (as a broken ProcessPoolExecutor does)."""
    try:
        blob = wire.decode(frames)
        if blob is None:  # a Master without initializer: the rank is usable again
            return None
        initializer, initargs = wire.loads(blob)
        initializer(*initargs)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        text = "".join(traceback.format_exception(exc))
        return BrokenExecutor(f"the initializer failed on this MPI worker: "
                              f"{type(exc).__name__}: {exc}\n{text}")
    return None


def _send_results(MPI, comm, master, records, busy):
    try:
        frames = wire.encode((records, busy), prefix=[r[0] for r in records])
    except Exception:
        # Find the values that do not pickle and turn them into errors.
        fixed = []
        for record in records:
            try:
                wire.encode(record)
                fixed.append(record)
            except Exception as exc:
                fixed.append((record[0], wire.FAILED, type(exc).__name__,
                              f"the task's result could not be sent back: {exc}", ""))
        frames = wire.encode((fixed, busy), prefix=[r[0] for r in fixed])
    wire.send(MPI, comm, master, wire.RESULTS, frames)


def serve(MPI, comm, master: int = 0, heartbeat_interval: float = wire.HEARTBEAT_INTERVAL) -> bool:
    """Serve the master until it sends STOP; return its "finalize" wish."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGALRM, _alarm)
    heartbeat = _Heartbeat(MPI, comm, master, heartbeat_interval)
    heartbeat.start()
    queue: collections.deque = collections.deque()
    init_error: Optional[BaseException] = None
    status = MPI.Status()
    backoff = wire.Backoff()
    try:
        while True:
            while comm.Iprobe(source=master, tag=MPI.ANY_TAG, status=status):
                _, tag, frames = wire.receive(MPI, comm, status)
                backoff.reset()
                if tag == wire.STOP:
                    heartbeat.stop()  # so that STOPPED is this rank's last message
                    wire.send(MPI, comm, master, wire.STOPPED, wire.encode(None))
                    return bool(wire.decode(frames).get("finalize", True))
                if tag == wire.INIT:
                    init_error = _run_initializer(frames)
                if tag == wire.TASKS:
                    ids = wire.decode_prefix(frames)
                    try:
                        queue.extend(wire.decode(frames))
                    except Exception as exc:  # e.g. a module the function needs is missing here
                        records = [wire.raised_record(i, exc) for i in ids]
                        _send_results(MPI, comm, master, records, 0.0)
            if not queue:
                backoff.wait()
                continue
            records, started, flushed = [], time.perf_counter(), time.monotonic()
            while queue:
                call = queue.popleft()
                records.append(_run_one(call) if init_error is None
                               else wire.raised_record(call[0], init_error))
                if time.monotonic() - flushed > FLUSH_SECONDS and queue:
                    _send_results(MPI, comm, master, records, time.perf_counter() - started)
                    records, started, flushed = [], time.perf_counter(), time.monotonic()
            _send_results(MPI, comm, master, records, time.perf_counter() - started)
    except BaseException as exc:
        try:
            wire.send(MPI, comm, master, wire.BYE, wire.encode(f"{type(exc).__name__}: {exc}"))
        except Exception:
            pass
        raise
    finally:
        heartbeat.stop()
