"""One multicore worker process: run task batches, send outcomes back.

Data flow (see ``multicore.py`` for the master's side)::

    task pipe  --TASKS frame-->  decode batch  -> for each task, in order:
                                                     started counter += 1
                                                     (STARTED frame if it has a timeout)
                                                     value = fn(*args, **kwargs)
    result pipe <--RESULTS frame-- encode batch <-  outcomes, flushed every few ms
                                                     and at the end of each batch

The shared ``started`` counter (a memfd both sides map) lets the master tell,
when this process dies, which task was running and which never started.
End of file on the task pipe means "stop"; a changed parent pid means the
master is gone, so the worker exits instead of lingering as an orphan.
"""

from __future__ import annotations

import contextlib
import gc
import mmap
import os
import pickle
import signal
import sys
import threading
import time
import traceback

from boinc_pymw.backends.base import run_chunk
from boinc_pymw.backends.multicore import _wire as wire

#: send finished outcomes at least this often while a batch runs (seconds)
FLUSH_INTERVAL = 0.002
#: ... or after any task that ran this long (seconds) ...
FLUSH_AFTER_TASK = 0.0002
#: ... or once this many result bytes wait
FLUSH_BYTES = 1 << 20
#: functions kept unpickled, and the biggest pickled function kept (bytes)
FUNCTION_CACHE_SIZE = 64
FUNCTION_CACHE_MAX_BLOB = 64 << 10


def _exit_with_parent(parent: int) -> None:
    while True:
        if os.getppid() != parent:
            os._exit(1)
        time.sleep(0.5)


def _dump(value) -> bytes:
    try:
        return pickle.dumps(value, wire.PROTOCOL)
    except Exception:
        import cloudpickle

        return cloudpickle.dumps(value, wire.PROTOCOL)


def _error_blob(exc: BaseException) -> bytes:
    """(pickled exception or None, type name, message, formatted traceback)."""
    tb = exc.__traceback__
    if tb is not None and tb.tb_next is not None:
        tb = tb.tb_next  # drop this module's own frame
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    try:
        exc_bytes = _dump(exc)
    except Exception:
        exc_bytes = None
    name = f"{type(exc).__module__}.{type(exc).__qualname__}"
    return pickle.dumps((exc_bytes, name, str(exc), text), wire.PROTOCOL)


def _stamping_calls(fn, counter):
    """``fn``, noting in shared memory when each call begins, so that the
    master times a chunk's calls out one by one rather than the whole chunk."""
    def call(*args):
        counter[1] = time.monotonic_ns()
        return fn(*args)
    return call


def _checkpoint_context():
    """``boinc_pymw.checkpoint.task_context`` if that module is installed."""
    try:
        from boinc_pymw.checkpoint import task_context
    except ImportError:
        return None
    return task_context


class _CountingPolicy:
    """The checkpoint policy of a worker's tasks, counting their
    ``checkpoint()`` calls: a call that made none left no checkpoint behind."""

    def __init__(self, policy):
        self.policy = policy
        self.touches = 0

    def due(self) -> bool:
        self.touches += 1
        return self.policy.due()

    def saved(self) -> None:
        self.touches += 1
        self.policy.saved()

    def fraction_done(self, fraction: float) -> None:
        self.policy.fraction_done(fraction)


def _enter_checkpoint_directory(stack: contextlib.ExitStack, root: str):
    """Give this worker's tasks their own checkpoint directory.

    Tasks in one worker run one after another, so one directory per worker,
    emptied after each task that checkpointed, keeps every task's checkpoints
    apart without a directory (and its system calls) per task. Returns the
    checkpoint file and the :class:`_CountingPolicy` that tells whether to
    remove it, or ``(None, None)`` without the checkpoint module. A multicore
    task is never resumed (a lost worker fails it), so nothing older than the
    running task is worth keeping.
    """
    task_context = _checkpoint_context()
    if task_context is None:
        return None, None
    context = stack.enter_context(task_context(os.path.join(root, f"worker-{os.getpid()}")))
    path = str(getattr(context, "path", "")) or None
    if path is None or not hasattr(context, "policy"):
        return None, None
    context.policy = _CountingPolicy(context.policy)
    return path, context.policy


def _own_checkpoints(fn, policy: _CountingPolicy, path: str):
    """``fn``, removing after each call the checkpoint it saved, so that the
    next call of the same ``map`` chunk starts afresh, like a task of its own."""
    def call(*args):
        touches = policy.touches
        try:
            return fn(*args)
        finally:
            if policy.touches != touches:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
    return call


class Worker:
    def __init__(self, task_fd: int, result_fd: int, counter_fd: int):
        self.task_fd = task_fd
        self.result_fd = result_fd
        self._counter_map = mmap.mmap(counter_fd, wire.COUNTER_BYTES)
        self.started = memoryview(self._counter_map).cast("Q")
        self.records: list = []
        self.blobs: list = []
        self.pending_bytes = 0
        self.checkpoint_file = None
        self.checkpoint_policy: "_CountingPolicy | None" = None
        #: function blobs whose map chunks made no checkpoint() call: their
        #: later chunks run without a per-call clean-up
        self.no_checkpoints: set = set()
        #: function blob -> function, least recently used first
        self.functions: dict = {}
        self._contexts = contextlib.ExitStack()

    def flush(self) -> None:
        if self.records:
            parts = wire.encode_batch(wire.RESULTS, self.records, self.blobs)
            self.records, self.blobs, self.pending_bytes = [], [], 0
            wire.write_all(self.result_fd, parts)

    def setup(self, settings: dict) -> bool:
        """Apply the master's settings and run the initializer; False if it
        raised (the master has been told why, and this worker must exit)."""
        sys.path[:] = settings["sys_path"]
        if settings.get("checkpoint_root"):
            self.checkpoint_file, self.checkpoint_policy = _enter_checkpoint_directory(
                self._contexts, settings["checkpoint_root"])
        if settings.get("initializer") is not None:
            try:
                initializer, initargs = pickle.loads(settings["initializer"])
                initializer(*initargs)
            except BaseException as exc:
                text = "".join(traceback.format_exception(exc))
                name = f"{type(exc).__module__}.{type(exc).__qualname__}"
                wire.write_all(self.result_fd, [wire.frame(
                    wire.INIT_FAILED, pickle.dumps((name, str(exc), text)))])
                return False
        return True

    def run_batch(self, body) -> None:
        (fn_count, tasks), blobs = wire.decode_batch(body)
        functions = []
        for blob in blobs[:fn_count]:
            try:
                functions.append((True, self.load_function(blob)))
            except BaseException as exc:  # e.g. the function's module is missing here
                functions.append((False, exc))
        last_flush = time.perf_counter()
        policy = self.checkpoint_policy
        payload = iter(blobs[fn_count:])
        for task_id, fn_index, flags, raw_count in tasks:
            blob = next(payload)
            raws = [next(payload) for _ in range(raw_count)] if raw_count else None
            self.started[0] += 1
            started_wall = time.time()
            began = time.perf_counter()
            if flags & wire.TIMED:
                wire.write_all(self.result_fd, [wire.frame(
                    wire.STARTED, pickle.dumps((task_id, time.monotonic())))])
            touches = 0 if policy is None else policy.touches
            try:
                loaded, fn = functions[fn_index]
                if not loaded:
                    raise fn.with_traceback(None)
                if flags & wire.CHUNK:
                    if flags & wire.TIMED:
                        fn = _stamping_calls(fn, self.started)
                    value = self.run_chunk(fn, blobs[fn_index], pickle.loads(blob))
                else:
                    args, kwargs = pickle.loads(blob)
                    if raws:
                        args, kwargs = wire.join_raw(args, kwargs, raws)
                        raws = None
                    value = fn(*args, **kwargs)
                ok = True
            except BaseException as exc:
                ok, value = False, exc
            ended = time.perf_counter()
            if policy is not None and policy.touches != touches:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.checkpoint_file)
            raw = False
            if not ok:
                out = _error_blob(value)
            elif type(value) is bytes and len(value) >= wire.RAW_MIN:
                out, raw = value, True
            else:
                try:
                    out = _dump(value)
                except BaseException as exc:  # the caller gets this very exception
                    exc.add_note(f"(raised while pickling the task's result, "
                                 f"a {type(value).__name__}, to send it to the master)")
                    ok, out = False, _error_blob(exc)
            value = None
            self.records.append((task_id, ok, started_wall, ended - began, raw))
            self.blobs.append(out)
            self.pending_bytes += len(out)
            # Flush every few ms for tiny tasks, at once after a longer one
            # (whose result someone is likely waiting for).
            if (ended - last_flush > FLUSH_INTERVAL or ended - began > FLUSH_AFTER_TASK
                    or self.pending_bytes > FLUSH_BYTES):
                self.flush()
                last_flush = time.perf_counter()
        self.flush()

    def load_function(self, blob):
        """The function pickled in ``blob``, unpickled once per worker: the
        master sends it again with every ``map`` and every batch, and a
        function that travels by value (a lambda, a closure, a ``__main__``
        function) costs more to unpickle than a chunk of no-ops to run. The
        same bytes are the same function in the same state; like a module's
        state under ProcessPoolExecutor, its globals persist in the worker."""
        if len(blob) > FUNCTION_CACHE_MAX_BLOB:
            return pickle.loads(blob)
        key = bytes(blob)
        fn = self.functions.pop(key, None)
        if fn is None:
            fn = pickle.loads(blob)
            while self.functions and (len(self.functions) >= FUNCTION_CACHE_SIZE):
                del self.functions[next(iter(self.functions))]  # least recently used
        self.functions[key] = fn
        return fn

    def run_chunk(self, fn, fn_blob, calls) -> list:
        """Run a ``map`` chunk. Until the function has shown that it makes no
        checkpoint() calls, each call's checkpoint is removed before the next
        call, which would restore it otherwise."""
        policy = self.checkpoint_policy
        if policy is None:
            return run_chunk(fn, calls)
        # (a big function, e.g. a closure over data, is never learnt: no copy
        # of its bytes per chunk)
        key = bytes(fn_blob) if len(fn_blob) <= FUNCTION_CACHE_MAX_BLOB else None
        if key is not None and key in self.no_checkpoints:
            return run_chunk(fn, calls)
        touches = policy.touches
        results = run_chunk(_own_checkpoints(fn, policy, self.checkpoint_file), calls)
        if key is not None and policy.touches == touches:
            if len(self.no_checkpoints) >= 256:
                self.no_checkpoints.clear()
            self.no_checkpoints.add(key)
        return results

    def serve(self) -> int:
        while True:
            got = wire.read_frame(self.task_fd)
            if got is None:
                return 0
            kind, body = got
            if kind == wire.TASKS:
                self.run_batch(body)
            elif kind == wire.INIT:
                if not self.setup(pickle.loads(body)):
                    return 1
                # What is loaded by now (modules, the initializer's state) lives
                # as long as the worker: keep it out of the collector's full
                # passes, which would otherwise pause tasks for milliseconds.
                gc.freeze()


def main(argv: list[str]) -> int:
    # Ctrl-C belongs to the master, which stops the workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    task_fd, result_fd, counter_fd, master_pid = (int(a) for a in argv[:4])
    # The master's pid comes from the master: it may be gone before we get here.
    threading.Thread(target=_exit_with_parent, args=(master_pid,), daemon=True).start()
    worker = Worker(task_fd, result_fd, counter_fd)
    with contextlib.suppress(BrokenPipeError), worker._contexts:
        return worker.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
