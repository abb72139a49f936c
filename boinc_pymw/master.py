"""``Master``: a ``concurrent.futures.Executor`` over any back end.

Two styles on one object:

* concurrent.futures: ``submit`` / ``map`` / ``shutdown`` / ``with``; its
  futures work with ``concurrent.futures.as_completed`` and ``wait``.
* PyMW: ``submit_task`` / ``get_result`` / ``get_status``, for code ported from
  PyMW (``PyMW_Master``).

The back end is picked by name (``interface=``), by ``-i/--interface`` on the
command line (``add_arguments`` + ``Master.from_args``) or by the
``BOINC_PYMW_INTERFACE`` environment variable, in that order.

Ctrl-C inside ``with Master(...)`` stops at once: queued tasks are cancelled
and back ends that can (multicore) kill their workers, so nothing hangs and no
process is left behind.
"""

from __future__ import annotations

import argparse
import collections
import math
import os
import threading
import time
from concurrent.futures import Executor, Future
from typing import Any, Callable, Iterable, Optional

from . import backends, progress as _progress
from .backends.base import WorkItem, run_chunk
from .errors import BoincPymwError

ENV_INTERFACE = "BOINC_PYMW_INTERFACE"


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
        return 1.0 if self.future.done() else 0.0

    def __repr__(self):
        name = getattr(self.executable, "__name__", repr(self.executable))
        return f"<Task {self._item.id} {name}{self.input_data!r} {self.future._state}>"


class Master(Executor):
    """Run Python callables on the chosen back end.

    ``interface``: back-end name (see ``boinc_pymw.backends.names()``).
    ``workers``: how many workers; back ends pick a default when None.
    ``task_timeout``: seconds a single task may run (None = no limit).
    Other keyword options go to the back end (e.g. ``project=`` for BOINC).
    """

    def __init__(self, interface: Optional[str] = None, workers: Optional[int] = None,
                 *, task_timeout: Optional[float] = None, **options: Any):
        name = interface or os.environ.get(ENV_INTERFACE) or backends.DEFAULT
        backend_cls = backends.get(name)
        self.interface = name
        self.task_timeout = task_timeout
        self._backend = backend_cls(workers=workers, **options)
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
        progress bar (tqdm when installed)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        calls = list(zip(*iterables))
        if chunksize is None:
            chunksize = self._backend.default_chunksize or self._auto_chunksize(len(calls))
        if chunksize < 1:
            raise ValueError("chunksize must be >= 1")
        items = []
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            if chunksize == 1:
                items = [WorkItem(fn, args, timeout=self.task_timeout) for args in calls]
            else:
                # Back ends recognise chunks by ``item.fn is run_chunk``.
                items = [WorkItem(run_chunk, (fn, calls[i:i + chunksize]),
                                  timeout=self.task_timeout)
                         for i in range(0, len(calls), chunksize)]
            if items:
                self._backend.submit(items)
        results = self._results_in_order(items, deadline, chunked=chunksize != 1)
        if progress:
            return _progress.track(results, len(calls), desc=getattr(fn, "__name__", "tasks"))
        return results

    def _auto_chunksize(self, n: int) -> int:
        workers = max(1, self._backend.workers or os.cpu_count() or 1)
        return max(1, min(4096, math.ceil(n / (workers * 4))))

    @staticmethod
    def _results_in_order(items, deadline, chunked):
        futures = [item.future for item in items]
        try:
            futures.reverse()
            while futures:
                fut = futures[-1]
                remaining = None if deadline is None else deadline - time.monotonic()
                value = fut.result(remaining)
                futures.pop()
                if chunked:
                    yield from value
                else:
                    yield value
        finally:
            for fut in futures:
                fut.cancel()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._shutdown = True
        try:
            self._backend.shutdown(wait=wait, cancel_futures=cancel_futures)
        except KeyboardInterrupt:
            self._abort("interrupted while shutting down")
            raise

    def _abort(self, reason: str) -> None:
        """Stop now: cancel what is queued, stop what runs where possible."""
        with self._lock:
            self._shutdown = True
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
                    dep_funcs=(), data_files=()) -> Task:
        """PyMW's ``submit_task``: run ``executable(*input_data)``.

        ``modules`` and ``dep_funcs`` are accepted for PyMW compatibility: the
        function travels with what it references, so they need no special
        handling. ``data_files`` must exist; they are checked here so a
        missing file fails at submission rather than on a worker.
        """
        if not callable(executable):
            raise TypeError("executable must be a callable")
        for path in data_files:
            if not os.path.exists(path):
                raise FileNotFoundError(f"data file not found: {path}")
        input_data = tuple(input_data) if input_data is not None else ()
        item = self._submit_item(executable, input_data, {})
        task = Task(executable, input_data, item)
        with self._finished_cond:
            self._tasks.append(task)
            self._unreturned[task] = None
        item.future.add_done_callback(lambda _f, t=task: self._task_done(t))
        return task

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
                    raise BoincPymwError("get_result: every submitted task was already returned")
                if wanted is not None and not any(t in self._unreturned for t in wanted):
                    raise BoincPymwError(
                        "get_result: the task was not submitted to this master or was already returned")
                if not blocking:
                    return None, None
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError("get_result: no task finished in time")
                self._finished_cond.wait(remaining)
        return found, found.future.result()

    def get_status(self) -> dict:
        """Counts of PyMW-style tasks by state, plus the back end's own facts."""
        counts = collections.Counter()
        with self._finished_cond:
            for t in self._tasks:
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
                  "tasks": len(self._tasks)}
        status.update(self._backend.status())
        return status
