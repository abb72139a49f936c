"""The multicore back end: persistent local worker processes over pipes.

Data flow::

    Master.submit / map
          |  WorkItems
          v
    _pending deque --(one event-loop thread)--> per worker, while it has room:
                                                  pop items, mark them RUNNING,
                                                  cloudpickle the functions and
                                                  pickle the arguments into ONE
                                                  TASKS frame (a batch)
                                                        |  task pipe (non-blocking)
                                                        v
                                                  worker process (_worker)
                                                        |  result pipe
                                                        v
    futures  <-- set_result / set_exception ---- RESULTS frames (batches),
                                                  STARTED frames (timed tasks)

Tiny tasks are batched on the wire automatically: a worker may hold about
``TARGET_QUEUE_SECONDS`` of work, priced with the measured run time of each
function (per element for ``map`` chunks). So no-ops travel thousands per
frame while 20 ms tasks, and functions not measured yet, travel two at a time,
keeping the load balanced and leaving the rest cancellable in ``_pending``.
Big payloads are capped at about 1 MiB per frame; pipes are enlarged to 1 MiB.

Failures: a worker's death shows as end of file on its result pipe. A shared
"started" counter tells which of its in-flight tasks ran: the one it was
running (and any whose results it had not sent yet) fail with
:class:`WorkerLost`; those it never started go back to the queue; a new
worker takes its place. A task over its timeout gets its worker killed and
fails with :class:`TaskTimeout`.

Everything on these pipes is trusted: the master's own code and data going to
processes it started itself. Nothing from volunteers ever travels this way.
"""

from __future__ import annotations

import atexit
import collections
import functools
import heapq
import math
import mmap
import os
import pickle
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from concurrent.futures import BrokenExecutor
from typing import Any, Callable, Optional, Sequence

from ...errors import BoincPymwError, RemoteTraceback, TaskError, TaskTimeout, WorkerLost
from . import _wire as wire
from ..base import Backend, WorkItem, run_chunk

#: seconds of work a worker may hold
TARGET_QUEUE_SECONDS = 0.02
#: bounds on tasks in flight per worker
MIN_IN_FLIGHT, MAX_IN_FLIGHT = 2, 2048
#: how many measured run times are kept per function
COST_TABLE_SIZE = 256
#: stop adding tasks to a frame once its payload reaches this size
MAX_FRAME_PAYLOAD = 1 << 20
#: how long a stopping worker may take before it is killed (seconds)
STOP_GRACE = 5.0
#: ``map`` without a chunk size: most seconds of measured work per chunk (as
#: much as a worker may hold: enough to make a chunk's cost vanish, little
#: enough to keep workers even)
CHUNK_SECONDS = TARGET_QUEUE_SECONDS
#: marks the run time of a call measured inside a map chunk
IN_CHUNKS = "in map chunks"

_live_backends: "weakref.WeakSet[MulticoreBackend]" = weakref.WeakSet()


def _stop_leftovers() -> None:
    """At interpreter exit, no worker outlives its master."""
    for backend in list(_live_backends):
        backend.kill(reason="the master process is exiting")


atexit.register(_stop_leftovers)


def describe_exit(code: Optional[int]) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _function_name(fn) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


def _function_key(fn) -> tuple:
    """What run times are learnt by: the same function in every ``map``.
    Its code's first line tells apart lambdas (all named ``<lambda>``), and
    a ``functools.partial`` counts as the function it wraps."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    code = getattr(fn, "__code__", None)
    return (getattr(fn, "__module__", None), getattr(fn, "__qualname__", None),
            None if code is None else code.co_firstlineno)


def _task_name(item: WorkItem) -> str:
    """The function a task runs (for a map chunk: the mapped function)."""
    return _function_name(_map_chunk(item)[0])


def _function_blob(item: WorkItem, fn) -> bytes:
    """``fn`` cloudpickled, once for all the items of one ``submit`` call."""
    shared = getattr(item, "function_blobs", None)
    if shared is None:
        return _cloudpickle().dumps(fn, wire.PROTOCOL)
    blob = shared.get(id(fn))
    if blob is None:
        blob = shared[id(fn)] = _cloudpickle().dumps(fn, wire.PROTOCOL)
    return blob


def _map_chunk(item: WorkItem) -> tuple:
    """``(fn, calls)`` of a ``Master.map`` chunk, or ``(item.fn, None)``."""
    if item.fn is run_chunk and len(item.args) == 2 and not item.kwargs:
        return item.args
    return item.fn, None


def _cost_key(item: WorkItem) -> tuple:
    """(which function and how it travels, how many calls): run times are
    learnt per function, apart for calls inside ``map`` chunks (a chunk
    counts as one call per element), since a call sent on its own also pays
    for its message."""
    fn, calls = _map_chunk(item)
    if calls is None:
        return _function_key(fn), 1
    return (_function_key(fn), IN_CHUNKS), max(1, len(calls))


def map_chunksize_for(per_call: float, n_calls: int, workers: int) -> int:
    """``map``'s chunk size for a function whose calls took ``per_call``
    seconds each: as few chunks as keep each under ``CHUNK_SECONDS`` of work,
    in a multiple of ``workers`` equal chunks (one per worker for no-ops).
    So no-ops travel in as few frames as possible, while calls of 20 ms or
    more go one by one and stay balanced (and cancellable) across workers.
    """
    workers = max(1, workers)
    chunks = max(1, math.ceil(n_calls * per_call / CHUNK_SECONDS))
    chunks = math.ceil(chunks / workers) * workers
    return max(1, math.ceil(n_calls / chunks))


def rebuild_exception(blob) -> BaseException:
    """The task's own exception, with the remote traceback as ``__cause__``."""
    exc_bytes, type_name, message, tb_text = pickle.loads(blob)
    exc = None
    if exc_bytes is not None:
        try:
            exc = pickle.loads(exc_bytes)
        except BaseException:  # even SystemExit from a hostile __reduce__: not our loop's end
            exc = None
    if not isinstance(exc, BaseException):
        exc = TaskError(f"{type_name}: {message}")
    exc.__cause__ = RemoteTraceback(tb_text)
    return exc


class _Worker:
    """One worker process as the master sees it."""

    def __init__(self, index: int, env: dict, init_frame: bytes):
        self.index = index
        task_r, self.task_fd = os.pipe()
        self.result_fd, result_w = os.pipe()
        wire.grow_pipe(self.task_fd)
        wire.grow_pipe(result_w)
        if hasattr(os, "memfd_create"):
            counter_fd = os.memfd_create("boinc_pymw-started")
        else:  # pragma: no cover - non-Linux
            counter_fd = os.dup(tempfile.TemporaryFile().fileno())
        os.ftruncate(counter_fd, wire.COUNTER_BYTES)
        try:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "boinc_pymw.backends.multicore._worker",
                 str(task_r), str(result_w), str(counter_fd), str(os.getpid())],
                pass_fds=(task_r, result_w, counter_fd), env=env, stdin=subprocess.DEVNULL)
            self._counter_map = mmap.mmap(counter_fd, wire.COUNTER_BYTES)
        finally:
            os.close(task_r)
            os.close(result_w)
            os.close(counter_fd)
        self.started = memoryview(self._counter_map).cast("Q")
        # Readable when the process ends, even if a child of the task still
        # holds the result pipe open (Linux >= 5.3).
        try:
            self.pidfd: Optional[int] = os.pidfd_open(self.popen.pid)
        except (AttributeError, OSError):  # pragma: no cover - older systems
            self.pidfd = None
        try:
            wire.write_all(self.task_fd, [init_frame])
        except BrokenPipeError:
            pass  # died at once; end of file on its result pipe reports it
        os.set_blocking(self.task_fd, False)
        os.set_blocking(self.result_fd, False)
        self.reader = wire.FrameReader(self.result_fd)
        self.in_flight: collections.deque[WorkItem] = collections.deque()
        self.costs: collections.deque[tuple] = collections.deque()  # (key, units, seconds)
        self.queued_seconds = 0.0  # estimated work in flight
        self.received = 0          # tasks whose outcome arrived
        self.outbox: Optional[list] = None  # buffers still to write
        self.stop_reason: Optional[str] = None  # set when the master kills it
        self.closed = self.input_closed = False
        self.started_total = 0

    @property
    def pid(self) -> int:
        return self.popen.pid

    def kill(self) -> None:
        if self.popen.poll() is None:
            try:
                self.popen.kill()
            except ProcessLookupError:
                pass

    def close_input(self) -> None:
        """End of file on the task pipe: the worker exits when idle."""
        if not self.input_closed:
            self.input_closed = True
            os.close(self.task_fd)

    def close(self) -> Optional[int]:
        """Release pipes and counter, reap the process; returns its exit status.
        Safe to call twice."""
        if not self.closed:
            self.closed = True
            self.close_input()
            os.close(self.result_fd)
            if self.pidfd is not None:
                os.close(self.pidfd)
            self.started_total = self.started[0]
            self.started.release()
            self._counter_map.close()
        try:
            return self.popen.wait(STOP_GRACE)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.popen.wait()


class MulticoreBackend(Backend):
    """Persistent worker processes on this machine (the default interface)."""

    name = "multicore"
    data_files = "copy"  # workers share this machine's files

    def __init__(self, workers: Optional[int] = None, *, initializer: Optional[Callable] = None,
                 initargs: tuple = (), **options: Any):
        workers = workers if workers is not None else (os.cpu_count() or 1)
        if workers < 1:
            raise ValueError("workers must be >= 1")
        super().__init__(workers, **options)
        settings = {"sys_path": list(sys.path)}
        if initializer is not None:
            # Sent in every worker's INIT frame, so a replacement runs it too.
            settings["initializer"] = _initializer_blob(initializer, initargs)
        self._pending: collections.deque[WorkItem] = collections.deque()
        self._retry: collections.deque[WorkItem] = collections.deque()  # already RUNNING
        self._deadlines: list = []
        self._cost: dict[tuple, float] = {}  # function key -> seconds per call
        self._closing = False
        self._killing: Optional[str] = None
        self._armed = False
        self._failure: Optional[BaseException] = None
        self._broken: Optional[str] = None  # workers cannot even start
        self._failed_starts = 0
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._checkpoint_root = tempfile.mkdtemp(prefix="boinc_pymw-mc-")
        self._env = self._worker_env()
        settings["checkpoint_root"] = self._checkpoint_root
        self._init_frame = wire.frame(wire.INIT, pickle.dumps(settings))
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._workers: list[_Worker] = []
        try:
            for index in range(workers):
                self._workers.append(self._start_worker(index))
        except BaseException:
            for w in self._workers:
                w.kill()
                w.close()
            raise
        _live_backends.add(self)
        self._thread = threading.Thread(target=self._run, name="boinc_pymw-multicore",
                                        daemon=True)
        self._thread.start()

    # -- Backend contract ----------------------------------------------------
    def submit(self, items: Sequence[WorkItem]) -> None:
        if self._closing:
            raise RuntimeError("cannot schedule new futures after shutdown")
        if self._broken is not None:
            raise BoincPymwError(self._broken)
        if len(items) > 1:
            # One map: its function is pickled once, not once per frame.
            shared: dict = {}
            for item in items:
                item.function_blobs = shared
        self._pending.extend(items)
        if self._armed:
            self._armed = False
            self._wake()

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        self._closing = True
        if cancel_futures:
            self._cancel_pending()
        self._wake()
        if wait and self._thread is not threading.current_thread():
            self._thread.join()

    def kill(self, reason: str = "the master stopped it") -> None:
        """Stop at once: cancel queued tasks, kill workers, fail running tasks."""
        if not self._thread.is_alive():
            return
        self._killing = reason
        self._closing = True
        self._cancel_pending()
        for w in list(self._workers):
            w.kill()
        self._wake()
        if self._thread is not threading.current_thread():
            self._thread.join(STOP_GRACE * 2)

    def map_chunksize(self, fn, n_calls: int) -> int:
        """From the measured run time of ``fn`` (see :func:`map_chunksize_for`);
        the general rule while it has not run yet."""
        key = _function_key(fn)
        per_call = self._cost.get((key, IN_CHUNKS))
        if per_call is None:  # measured one call at a time: an upper bound
            per_call = self._cost.get(key)
        if per_call is None:
            return super().map_chunksize(fn, n_calls)
        return map_chunksize_for(per_call, n_calls, self.workers)

    def status(self) -> dict:
        return {
            "workers": self.workers,
            "worker_pids": [w.pid for w in self._workers],
            "in_flight": sum(len(w.in_flight) for w in self._workers),
            "pending": len(self._pending) + len(self._retry),
        }

    # -- helpers ---------------------------------------------------------------
    @staticmethod
    def _worker_env() -> dict:
        env = dict(os.environ)
        package_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
            os.path.abspath(__file__)))))  # .../boinc_pymw/backends/multicore/backend.py
        env["PYTHONPATH"] = os.pathsep.join(
            [package_parent] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        return env

    def _start_worker(self, index: int) -> _Worker:
        worker = _Worker(index, self._env, self._init_frame)
        self._selector.register(worker.result_fd, selectors.EVENT_READ, worker)
        if worker.pidfd is not None:
            self._selector.register(worker.pidfd, selectors.EVENT_READ, worker)
        return worker

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"!")
        except (BlockingIOError, OSError):
            pass  # already has bytes waiting, or closed at the very end

    def _cancel_pending(self) -> None:
        while self._pending:
            try:
                item = self._pending.popleft()
            except IndexError:
                break
            item.future.cancel()

    def _has_room(self, worker: _Worker) -> bool:
        n = len(worker.in_flight)
        return n < MIN_IN_FLIGHT or (n < MAX_IN_FLIGHT
                                     and worker.queued_seconds < TARGET_QUEUE_SECONDS)

    # -- event loop ------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # a bug here must not leave futures pending
            self._failure = exc
            self._broken = f"multicore back end failed: {exc!r}"
            self._fail_everything(BoincPymwError(self._broken))
        finally:
            self._stop_workers()
            if self._broken is not None:
                self._fail_queued(BoincPymwError(self._broken))

    def _loop(self) -> None:
        while True:
            self._armed = True
            if self._killing is not None or self._broken is not None:
                reason = self._killing or self._broken
                self._fail_queued(WorkerLost(f"not run: {reason}"))
            else:
                self._dispatch()
            busy = self._pending or self._retry or any(w.in_flight for w in self._workers)
            if self._closing and not busy:
                return
            events = self._selector.select(self._seconds_to_deadline())
            for key, _mask in events:
                if key.data is None:
                    try:
                        while os.read(self._wake_r, 4096):
                            pass
                    except BlockingIOError:
                        pass
                elif key.data.closed:
                    continue  # replaced earlier in this round
                elif key.fileobj == key.data.result_fd:
                    self._read_results(key.data)
                elif key.fileobj == key.data.pidfd:
                    self._read_results(key.data, exited=True)
                else:
                    self._send(key.data)
            self._expire_overdue()

    def _dispatch(self) -> None:
        # Top a worker up only once it has used half its room, so that tiny
        # tasks travel in big frames rather than a trickle of small ones.
        ready = [w for w in self._workers
                 if w.outbox is None and not w.closed and (
                     len(w.in_flight) < MIN_IN_FLIGHT
                     or (len(w.in_flight) <= MAX_IN_FLIGHT // 2
                         and w.queued_seconds <= TARGET_QUEUE_SECONDS / 2))]
        if not ready:
            return
        ready.sort(key=lambda w: w.queued_seconds)  # idle workers first
        for position, w in enumerate(ready):
            queued = len(self._pending) + len(self._retry)
            if not queued:
                return
            share = max(1, math.ceil(queued / (len(ready) - position)))
            self._send_batch(w, share)

    def _next_item(self) -> Optional[WorkItem]:
        while True:
            if self._retry:
                return self._retry.popleft()
            try:
                item = self._pending.popleft()
            except IndexError:
                return None
            if item.mark_started():
                return item

    def _send_batch(self, worker: _Worker, limit: int) -> None:
        fn_index: dict[int, int] = {}
        fn_blobs: list = []
        records: list = []
        arg_blobs: list = []
        size = 0
        while len(records) < limit and size < MAX_FRAME_PAYLOAD and self._has_room(worker):
            item = self._next_item()
            if item is None:
                break
            # A map chunk travels as its function plus its calls, so the
            # calls pickle with plain pickle even when the function needs
            # cloudpickle (a lambda, a __main__ function).
            fn, calls = _map_chunk(item)
            index = fn_index.get(id(fn))
            if index is None:
                try:
                    blob = _function_blob(item, fn)
                except BaseException as exc:
                    item.set_exception(_cannot_send(
                        f"cannot send function {_function_name(fn)} to a worker", exc))
                    continue
                index = fn_index[id(fn)] = len(fn_blobs)
                fn_blobs.append(blob)
                size += len(blob)
            try:
                if calls is None:
                    args, kwargs, raws = wire.split_raw(item.args, item.kwargs)
                    blob = _dumps((args, kwargs))
                else:
                    raws = ()
                    blob = _dumps(calls)
            except BaseException as exc:
                item.set_exception(_cannot_send(
                    f"cannot send the arguments of {_function_name(fn)} to a worker", exc))
                continue
            flags = ((wire.TIMED if item.timeout is not None else 0)
                     | (wire.CHUNK if calls is not None else 0))
            records.append((item.id, index, flags, len(raws)))
            arg_blobs.append(blob)
            size += len(blob)
            if raws:
                arg_blobs.extend(raws)
                size += sum(len(r) for r in raws)
            key, units = _cost_key(item)
            per_call = self._cost.get(key)
            # unmeasured: priced so that MIN_IN_FLIGHT of them fill the room
            cost = TARGET_QUEUE_SECONDS / MIN_IN_FLIGHT if per_call is None else per_call * units
            worker.in_flight.append(item)
            worker.costs.append((key, units, cost))
            worker.queued_seconds += cost
        if not records:
            return
        worker.outbox = wire.encode_batch(wire.TASKS, (len(fn_blobs), records),
                                          fn_blobs + arg_blobs)
        self._send(worker)

    def _send(self, worker: _Worker) -> None:
        try:
            while worker.outbox:
                worker.outbox = wire.write_some(worker.task_fd, worker.outbox)
        except BlockingIOError:
            if not self._selector_has(worker.task_fd):
                self._selector.register(worker.task_fd, selectors.EVENT_WRITE, worker)
            return
        except (BrokenPipeError, OSError):
            pass  # the worker died; its result pipe reports end of file
        worker.outbox = None
        if self._selector_has(worker.task_fd):
            self._selector.unregister(worker.task_fd)

    def _selector_has(self, fd: int) -> bool:
        try:
            self._selector.get_key(fd)
            return True
        except KeyError:
            return False

    def _read_results(self, worker: _Worker, exited: bool = False) -> None:
        """Take what the worker sent. ``exited``: its process ended (it may
        have left a child holding the pipe open, so no end of file comes)."""
        frames, eof = worker.reader.read()
        for kind, body in frames:
            if kind == wire.RESULTS:
                self._take_results(worker, body)
            elif kind == wire.STARTED:
                task_id, started = pickle.loads(body)
                for item in worker.in_flight:
                    if item.id == task_id:
                        heapq.heappush(self._deadlines,
                                       (started + item.timeout, item.id, worker, item))
                        break
            elif kind == wire.INIT_FAILED:
                self._initializer_failed(worker, body)
        if eof or exited:
            self._replace(worker)

    def _initializer_failed(self, worker: _Worker, body) -> None:
        """A worker's initializer raised: like ProcessPoolExecutor, the pool is
        broken; what waits fails with BrokenExecutor and new work is refused."""
        type_name, message, tb_text = pickle.loads(body)
        self._broken = (f"the initializer failed in multicore worker {worker.index} "
                        f"(pid {worker.pid}): {type_name}: {message}")
        error = BrokenExecutor(self._broken)
        error.__cause__ = RemoteTraceback(tb_text)
        for item in worker.in_flight:  # sent to it, never started: it ran no task
            item.set_exception(error)
        self._fail_queued(error)

    def _take_results(self, worker: _Worker, body) -> None:
        records, blobs = wire.decode_batch(body)
        measured: dict[tuple, list] = {}
        for (task_id, ok, started_wall, duration, raw), blob in zip(records, blobs):
            item = worker.in_flight.popleft()
            key, units, cost = worker.costs.popleft()
            worker.queued_seconds -= cost
            worker.received += 1
            if item.id != task_id:  # pragma: no cover - would be a protocol bug
                raise BoincPymwError(f"worker {worker.index} answered task {task_id}, "
                                     f"expected {item.id}")
            measured.setdefault(key, []).append(duration / units)
            if item.future.done():  # e.g. already failed by its timeout
                continue
            item.started_at = started_wall
            item.execution_time = duration
            if ok:
                try:
                    value = bytes(blob) if raw else pickle.loads(blob)
                except BaseException as exc:  # even SystemExit: fail this task, keep the loop
                    error = TaskError(
                        f"the result of task {item.id} cannot be unpickled in the master: {exc!r}")
                    error.__cause__ = exc
                    item.set_exception(error)
                    continue
                item.set_result(value)
            else:
                item.set_exception(rebuild_exception(blob))
        if not worker.in_flight:
            worker.queued_seconds = 0.0  # no drift from float sums
        for key, durations in measured.items():
            # the median of the batch: a worker pre-empted now and then must
            # not make every call look slow
            durations.sort()
            typical = durations[len(durations) // 2]
            known = self._cost.get(key)
            if known is None and len(self._cost) >= COST_TABLE_SIZE:
                self._cost.clear()
            self._cost[key] = typical if known is None else (known + typical) / 2

    def _seconds_to_deadline(self) -> Optional[float]:
        while self._deadlines and self._deadlines[0][3].future.done():
            heapq.heappop(self._deadlines)
        if not self._deadlines:
            return None
        return max(0.0, self._deadlines[0][0] - time.monotonic())

    def _expire_overdue(self) -> None:
        now = time.monotonic()
        while self._deadlines and self._deadlines[0][0] <= now:
            _, _, worker, item = heapq.heappop(self._deadlines)
            if item.future.done() or worker.closed:
                continue
            what = f"task {item.id}"
            if item.fn is run_chunk:
                # The timeout is per call: the worker stamps when each call
                # of a timed chunk begins.
                call_began = worker.started[1] / 1e9
                if call_began + item.timeout > now:
                    heapq.heappush(self._deadlines,
                                   (call_began + item.timeout, item.id, worker, item))
                    continue
                what = f"a call of map chunk {item.id}"
            worker.stop_reason = f"{what} exceeded its {item.timeout:g} s timeout"
            worker.kill()
            item.set_exception(TaskTimeout(
                f"{what} ({_task_name(item)}) ran longer than its "
                f"{item.timeout:g} s timeout; worker {worker.index} (pid {worker.pid}) "
                f"was killed and replaced"))

    def _replace(self, worker: _Worker) -> None:
        """The worker is gone: settle its tasks and start another in its place."""
        self._selector.unregister(worker.result_fd)
        if worker.pidfd is not None:
            self._selector.unregister(worker.pidfd)
        if self._selector_has(worker.task_fd):
            self._selector.unregister(worker.task_fd)
        code = worker.close()
        ran = worker.started_total - worker.received
        cause = worker.stop_reason or self._killing or describe_exit(code)
        who = f"worker {worker.index} (pid {worker.pid}, {describe_exit(code)})"
        for position, item in enumerate(worker.in_flight):
            if self._killing is not None:
                item.set_exception(WorkerLost(f"{who} was stopped: {self._killing}"))
            elif position == ran - 1:
                item.set_exception(WorkerLost(
                    f"{who} died while running task {item.id} "
                    f"({_task_name(item)}): {cause}"))
            elif position < ran:
                item.set_exception(WorkerLost(
                    f"{who} died ({cause}) before sending the result of task {item.id}"))
            elif not item.future.done():
                self._retry.append(item)
        worker.in_flight.clear()
        worker.costs.clear()
        worker.queued_seconds = 0.0
        worker.outbox = None
        if worker.started_total == 0 and self._killing is None:
            # Died before running anything: a broken interpreter or install.
            self._failed_starts += 1
            if self._failed_starts >= 3 * self.workers:
                self._broken = (f"multicore workers die on start-up ({describe_exit(code)}, "
                                f"{self._failed_starts} times); see their messages on stderr")
        else:
            self._failed_starts = 0
        if self._killing is None and self._broken is None and \
                not (self._closing and not self._pending and not self._retry):
            self._workers[worker.index] = self._start_worker(worker.index)

    def _fail_everything(self, exc: BaseException) -> None:
        for w in self._workers:
            for item in w.in_flight:
                item.set_exception(exc)
            w.in_flight.clear()
            w.costs.clear()
        self._fail_queued(exc)

    def _fail_queued(self, exc: BaseException) -> None:
        while self._retry:
            self._retry.popleft().set_exception(exc)
        while self._pending:
            item = self._pending.popleft()
            if item.mark_started():
                item.set_exception(exc)

    def _stop_workers(self) -> None:
        """End of the loop: close task pipes (workers exit on EOF) and reap."""
        for w in self._workers:
            if self._killing is not None:
                w.kill()
            if not w.closed:
                w.close_input()
        for w in self._workers:
            w.close()
        self._selector.close()
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self._checkpoint_root, ignore_errors=True)
        _live_backends.discard(self)


def _cloudpickle():
    import cloudpickle

    return cloudpickle


def _cannot_send(what: str, exc: BaseException) -> TypeError:
    """The caller's error for a call that does not pickle; the pickler's own
    exception (PicklingError, or what ``__reduce__`` raised) is its cause."""
    error = TypeError(f"{what}: {type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error


def _initializer_blob(initializer: Callable, initargs) -> bytes:
    if not callable(initializer):
        raise TypeError(f"initializer must be callable, not {type(initializer).__name__}")
    try:
        return _cloudpickle().dumps((initializer, tuple(initargs)), wire.PROTOCOL)
    except Exception as exc:
        raise TypeError(f"cannot send the initializer {_function_name(initializer)} "
                        f"to the workers: {exc}") from exc


def _dumps(obj) -> bytes:
    """Plain pickle when it will do (fast); cloudpickle for lambdas, closures
    and anything defined in ``__main__`` (which workers do not have)."""
    try:
        blob = pickle.dumps(obj, wire.PROTOCOL)
        if b"__main__" not in blob:
            return blob
    except Exception:
        pass
    return _cloudpickle().dumps(obj, wire.PROTOCOL)
