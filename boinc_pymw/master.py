"""``Master``: a ``concurrent.futures.Executor`` over any back end.

Two styles on one object:

* concurrent.futures: ``submit`` / ``map`` / ``shutdown`` / ``with``; its
  futures work with ``concurrent.futures.as_completed`` and ``wait``.
* PyMW: ``submit_task`` / ``get_result`` / ``get_status``, for code ported from
  PyMW (the ``pymw`` package maps PyMW 0.4's own names onto these).

The back end is picked by name (``interface=``), by ``-i/--interface`` on the
command line (``add_arguments`` + ``Master.from_args``) or by the
``BOINC_PYMW_INTERFACE`` environment variable, in that order.

Ctrl-C inside ``with Master(...)`` stops at once: queued tasks are cancelled
and back ends that can (multicore) kill their workers, so nothing hangs and no
process is left behind. A Master dropped without ``shutdown()`` shuts its back
end down when it is garbage-collected (running tasks still finish).
"""

from __future__ import annotations

import argparse
import collections
import itertools
import os
import threading
import time
import weakref
from concurrent.futures import Executor, Future
from typing import Any, Callable, Iterable, Optional

from . import backends, progress as _progress
from .backends.base import ChunkFailed, SingleArgCalls, WorkItem, run_chunk
from .errors import BoincPymwError, RemoteTraceback

ENV_INTERFACE = "BOINC_PYMW_INTERFACE"


class TaskLookupError(BoincPymwError, LookupError):
    """``get_result`` was asked for a task this Master does not hold (never
    submitted here, or already returned)."""


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the "one switch" options: ``-i/--interface``, ``-n/--workers`` and
    each back end's own options (e.g. ``-p/--project`` for BOINC)."""
    parser.add_argument(
        "-i", "--interface", default=None,
        help=f"back end: {', '.join(backends.names())} "
             f"(default: ${ENV_INTERFACE} or {backends.DEFAULT})",
    )
    parser.add_argument("-n", "--workers", type=int, default=None,
                        help="number of workers (default: number of CPUs)")
    seen = set()
    for name in backends.names():
        try:
            cls = backends.get(name)
        except ImportError:  # optional dependency missing: its options stay hidden
            continue
        if cls in seen:
            continue
        seen.add(cls)
        cls.add_arguments(parser)
    return parser


class Task:
    """A PyMW-style task handle (what ``submit_task`` returns)."""

    def __init__(self, executable: Callable, input_data: tuple, item: WorkItem):
        self.executable = executable
        self.input_data = input_data
        self._item = item

    @property
    def future(self) -> Future:
        return self._item.future

    def get_total_time(self) -> Optional[float]:
        """Seconds from submission to completion (None while unfinished)."""
        if self._item.finished_at is None:
            return None
        return self._item.finished_at - self._item.submitted_at

    def get_execution_time(self) -> Optional[float]:
        """Seconds the task ran on its worker (None while unfinished).

        Back ends that measure it on the worker set ``item.execution_time``;
        otherwise it is the time from start to the outcome's arrival."""
        if self._item.finished_at is None:
            return None
        measured = getattr(self._item, "execution_time", None)
        if measured is not None:
            return measured
        if self._item.started_at is None:
            return None
        return self._item.finished_at - self._item.started_at

    def get_progress(self) -> float:
        """1.0 once finished, else 0.0 (as in PyMW)."""
        return 1.0 if self.future.done() else 0.0

    def __repr__(self):
        name = getattr(self.executable, "__name__", repr(self.executable))
        return f"<Task {self._item.id} {name}{self.input_data!r} {self.future._state}>"


def _shutdown_dropped(backend) -> None:
    """What a garbage-collected Master leaves behind: the back end stops taking
    work and ends once what was submitted has finished."""
    try:
        backend.shutdown(wait=False)
    except Exception:  # pragma: no cover - nothing to report to at GC time
        pass


class Master(Executor):
    """Run Python callables on the chosen back end.

    ``interface``: back-end name (see ``boinc_pymw.backends.names()``).
    ``workers``: how many workers; back ends pick a default when None.
    ``task_timeout``: seconds a single task may run (None = no limit).
    ``initializer(*initargs)`` runs once in each worker process (multicore,
    mpi), like ``ProcessPoolExecutor``'s.
    Other keyword options go to the back end (e.g. ``project=`` for BOINC); an
    option the back end does not know is a TypeError.
    """

    def __init__(self, interface: Optional[str] = None, workers: Optional[int] = None,
                 *, task_timeout: Optional[float] = None, **options: Any):
        name = interface or os.environ.get(ENV_INTERFACE) or backends.DEFAULT
        backend_cls = backends.get(name)
        backend_cls.check_options(options)
        self.interface = name
        self.task_timeout = task_timeout
        self._backend = backend_cls(workers=workers, **options)
        self._finalizer = weakref.finalize(self, _shutdown_dropped, self._backend)
        self._finalizer.atexit = False  # at exit the back ends stop their own workers
        self._lock = threading.Lock()
        self._shutdown = False
        self._tasks: list[Task] = []
        # PyMW bookkeeping: tasks not handed back by get_result yet, and the
        # finished ones among them in the order they finished (dicts as
        # ordered sets).
        self._unreturned: dict[Task, None] = {}
        self._finished: dict[Task, None] = {}
        self._finished_cond = threading.Condition()

    @classmethod
    def from_args(cls, args: argparse.Namespace, **overrides: Any) -> "Master":
        """Build a Master from options added by :func:`add_arguments`."""
        name = overrides.pop("interface", None) or getattr(args, "interface", None) \
            or os.environ.get(ENV_INTERFACE) or backends.DEFAULT
        backend_cls = backends.get(name)
        options = backend_cls.options_from_args(args)
        options.update(overrides)
        options.setdefault("workers", getattr(args, "workers", None))
        return cls(interface=name, **options)

    @property
    def backend(self):
        return self._backend

    # -- concurrent.futures -------------------------------------------------
    def submit(self, fn: Callable, /, *args: Any, **kwargs: Any) -> Future:
        return self._submit_item(fn, args, kwargs).future

    def _submit_item(self, fn, args, kwargs) -> WorkItem:
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            item = WorkItem(fn, args, kwargs, timeout=self.task_timeout)
            self._backend.submit([item])
        return item

    def map(self, fn: Callable, *iterables: Iterable, timeout: Optional[float] = None,
            chunksize: Optional[int] = None, progress: bool = False):
        """Like ``Executor.map``; calls travel in chunks (automatic size by
        default) so that tiny tasks cost little. ``progress=True`` shows a
        progress bar (tqdm when installed).

        Each result is released once yielded. A call that raises re-raises
        at its place in the order: the results before it, even those of its
        own chunk, are yielded first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        stream = getattr(self._backend, "map_stream", None)
        if stream is not None and chunksize in (None, 1):
            # A back end that streams (BOINC: a million calls) reads the
            # iterables lazily and holds no future per call.
            with self._lock:
                if self._shutdown:
                    raise RuntimeError("cannot schedule new futures after shutdown")
                results = stream(fn, iterables, timeout=timeout)
            if progress:
                sizes = [len(it) for it in iterables if hasattr(it, "__len__")]
                total = min(sizes) if len(sizes) == len(iterables) else None
                return _progress.track(results, total, desc=getattr(fn, "__name__", "tasks"))
            return results
        # One iterable (the usual case): no 1-tuples to build, pickle and unpack.
        one_arg = len(iterables) == 1
        calls = list(iterables[0]) if one_arg else list(zip(*iterables))
        if chunksize is None:
            chunksize = self._backend.map_chunksize(fn, len(calls))
        if chunksize < 1:
            raise ValueError("chunksize must be >= 1")
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            if chunksize == 1:
                items = [WorkItem(fn, (args,) if one_arg else args, timeout=self.task_timeout)
                         for args in calls]
            else:
                # Back ends recognise chunks by ``item.fn is run_chunk``.
                chunks = (calls[i:i + chunksize] for i in range(0, len(calls), chunksize))
                if one_arg:
                    chunks = map(SingleArgCalls, chunks)
                items = [WorkItem(run_chunk, (fn, chunk), timeout=self.task_timeout)
                         for chunk in chunks]
            if items:
                self._backend.submit(items)
        total = len(calls)
        futures = [item.future for item in items]
        del items, calls  # the generator below must be the only holder of results
        results = _results_in_order(futures, deadline, chunked=chunksize != 1)
        if progress:
            return _progress.track(results, total, desc=getattr(fn, "__name__", "tasks"))
        return results

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._shutdown = True
        self._finalizer.detach()
        try:
            self._backend.shutdown(wait=wait, cancel_futures=cancel_futures)
        except KeyboardInterrupt:
            self._abort("interrupted while shutting down")
            raise

    def _abort(self, reason: str) -> None:
        """Stop now: cancel what is queued, stop what runs where possible."""
        with self._lock:
            self._shutdown = True
        self._finalizer.detach()
        kill = getattr(self._backend, "kill", None)
        if kill is not None:
            kill(reason)
        else:
            self._backend.shutdown(wait=False, cancel_futures=True)

    def __exit__(self, exc_type, exc_val, exc_tb):
        if exc_type is not None and not issubclass(exc_type, Exception):
            # KeyboardInterrupt / SystemExit: do not wait for running tasks.
            self._abort(f"the master was stopped ({exc_type.__name__})")
        else:
            self.shutdown(wait=True)
        return False

    # -- PyMW-compatible API ------------------------------------------------
    def submit_task(self, executable: Callable, input_data: Iterable = (), modules=(),
                    dep_funcs=(), data_files=(), input_from_file: bool = False) -> Task:
        """PyMW's ``submit_task``: run ``executable(*input_data)``.

        ``modules`` and ``dep_funcs`` are accepted for PyMW compatibility: the
        function travels with what it references, so they need no special
        handling. Each of ``data_files`` is put, under its base name, into a
        directory of the task's own that is its current directory while it
        runs (checked here: a missing file fails at submission).
        ``input_from_file=True`` says ``input_data`` names files the task
        opens itself (paths, or PyMW_MapReduce's ``[path, start, end]``
        blocks): they must exist, and relative names are made absolute so they
        still work from the task's directory.
        """
        if not callable(executable):
            raise TypeError("executable must be a callable")
        input_data = tuple(input_data) if input_data is not None else ()
        if input_from_file:
            input_data = _absolute_file_names(input_data)
        if data_files:
            from .backends.task_directory import collect, run_in_task_directory

            mode = type(self._backend).data_files
            if mode is None:
                raise BoincPymwError(
                    f"the {self.interface} back end cannot put data_files into a task's "
                    f"directory (every built-in back end can; this one sets no "
                    f"Backend.data_files); ship the data with the task's arguments, or with "
                    f"the app's code")
            files = collect(data_files, mode)
            item = self._submit_item(run_in_task_directory,
                                     (executable, input_data, {}, files), {})
        else:
            item = self._submit_item(executable, input_data, {})
        task = Task(executable, input_data, item)
        self._track(task)
        return task

    def _track(self, task: Task) -> None:
        """Hand ``task`` to ``get_result``/``get_status`` bookkeeping."""
        with self._finished_cond:
            self._tasks.append(task)
            self._unreturned[task] = None
        # A weak reference: a pending task must not keep its Master alive.
        master = weakref.ref(self)
        task.future.add_done_callback(lambda _f, t=task: _task_done(master, t))

    def _task_done(self, task: Task) -> None:
        with self._finished_cond:
            if task in self._unreturned:
                self._finished[task] = None
            self._finished_cond.notify_all()

    def get_result(self, task: Optional[Task | list] = None, blocking: bool = True,
                   timeout: Optional[float] = None):
        """PyMW's ``get_result``: ``(task, result)`` of a finished task.

        ``task=None`` waits for any finished task not returned yet; a list
        waits for any of its tasks. Non-blocking with nothing ready gives
        ``(None, None)``. A task's exception is raised here.
        """
        if task is None:
            wanted = None
        elif isinstance(task, (list, tuple, set, frozenset)):
            wanted = set(task)
        else:
            wanted = {task}
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._finished_cond:
            while True:
                found = next((t for t in self._finished if wanted is None or t in wanted), None)
                if found is not None:
                    del self._finished[found]
                    del self._unreturned[found]
                    break
                if wanted is None and not self._unreturned:
                    raise TaskLookupError("get_result: every submitted task was already returned")
                if wanted is not None and not any(t in self._unreturned for t in wanted):
                    raise TaskLookupError(
                        "get_result: the task was not submitted to this master or was already returned")
                if not blocking:
                    return None, None
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError("get_result: no task finished in time")
                self._finished_cond.wait(remaining)
        return found, found.future.result()

    def get_progress(self, task: Task | list) -> list:
        """PyMW's ``get_progress``: the progress (0.0 or 1.0) of each task."""
        tasks = list(task) if isinstance(task, (list, tuple)) else [task]
        return [t.get_progress() for t in tasks]

    def get_status(self) -> dict:
        """Counts of PyMW-style tasks by state, the tasks themselves (PyMW's
        ``"tasks"`` list, in submission order), plus the back end's own facts."""
        counts = collections.Counter()
        with self._finished_cond:
            tasks = list(self._tasks)
        for t in tasks:
            f = t.future
            if f.cancelled():
                counts["cancelled"] += 1
            elif f.done():
                counts["failed" if f.exception() else "done"] += 1
            elif f.running():
                counts["running"] += 1
            else:
                counts["queued"] += 1
        status = {"interface": self.interface,
                  **{k: counts.get(k, 0) for k in ("queued", "running", "done", "failed", "cancelled")},
                  "submitted": len(tasks), "tasks": tasks}
        status.update(self._backend.status())
        return status


def _task_done(master_ref, task: Task) -> None:
    master = master_ref()
    if master is not None:
        master._task_done(task)


def _result_or_cancel(future: Future, timeout: Optional[float]):
    """``future.result(timeout)``; on a timeout (or Ctrl-C) the future is
    cancelled too, since nobody will ask for it again."""
    try:
        return future.result(timeout)
    finally:
        future.cancel()


class _ChunkedResults(itertools.chain):
    """What ``map`` returns for chunked calls: the results in order, at C
    speed per result (a chain of per-chunk iterators), closable like the
    generator of chunks it runs on."""

    def close(self) -> None:
        self._chunks.close()


def _results_in_order(futures: list, deadline: Optional[float], chunked: bool):
    """The results of ``futures`` in order, each reference dropped once
    yielded (a long map must not keep every result alive)."""
    if not chunked:
        return _single_results(futures, deadline)
    chunks = _chunk_iterators(futures, deadline)
    results = _ChunkedResults.from_iterable(chunks)
    results._chunks = chunks
    return results


def _single_results(futures: list, deadline: Optional[float]):
    futures.reverse()
    try:
        while futures:
            remaining = None if deadline is None else deadline - time.monotonic()
            yield _result_or_cancel(futures.pop(), remaining)
    finally:
        for fut in futures:
            fut.cancel()


def _chunk_iterators(futures: list, deadline: Optional[float]):
    """For each chunk in order, an iterator over its results; a call that
    failed raises here, after the results of the calls before it."""
    futures.reverse()
    try:
        while futures:
            remaining = None if deadline is None else deadline - time.monotonic()
            try:
                chunk = _result_or_cancel(futures.pop(), remaining)
            except ChunkFailed as failed:
                chunk, error = failed.results, _unpack_chunk_error(failed)
                del failed
            else:
                error = None
            chunk.reverse()
            # pop() hands each result over and drops the chunk's reference to it
            yield itertools.starmap(chunk.pop, itertools.repeat((), len(chunk)))
            del chunk
            if error is not None:
                try:
                    raise error
                finally:
                    del error
    finally:
        for fut in futures:
            fut.cancel()


def _unpack_chunk_error(failed: ChunkFailed) -> BaseException:
    """The failing call's own exception. Back from another process it has no
    traceback: the worker's traceback text becomes its ``__cause__``."""
    error = failed.error
    if error.__traceback__ is None and error.__cause__ is None and failed.traceback_text:
        error.__cause__ = RemoteTraceback(failed.traceback_text)
    return error


def _absolute_file_names(data):
    """PyMW's ``input_from_file``: file names in ``data`` (strings, possibly in
    lists such as ``[path, start, end]`` blocks) must exist; relative ones are
    made absolute."""
    if isinstance(data, (str, os.PathLike)):
        path = os.fspath(data)
        if not os.path.exists(path):
            raise FileNotFoundError(f"input file not found: {path}")
        return os.path.abspath(path)
    if isinstance(data, (list, tuple)):
        converted = [_absolute_file_names(x) for x in data]
        return type(data)(converted) if isinstance(data, tuple) else converted
    return data
