"""The contract between :class:`boinc_pymw.Master` and a back end.

The Master owns the futures and the bookkeeping; a back end only runs work::

    Master.submit(fn, *args)          Master.map(fn, xs)
          |                                 |  (chunks of calls)
          v                                 v
      WorkItem(id, fn, args, kwargs, future, timeout)
          |
          v
    Backend.submit([items])  --->  ... runs somewhere (processes, MPI ranks,
                                        HTCondor jobs, BOINC volunteers) ...
          |
          v
    item.future  <- set_running_or_notify_cancel() before the call starts,
                    then set_result(value) / set_exception(exc)

A back end must never leave a future pending forever: a lost worker, a held
job or a failed workunit ends as ``set_exception`` with a clear error.
"""

from __future__ import annotations

import abc
import argparse
import inspect
import itertools
import math
import os
import logging
import time
import traceback
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Optional, Sequence

from ..errors import TaskError

_ids = itertools.count(1)
log = logging.getLogger(__name__)


def run_chunk(fn: Callable, chunk: list) -> list:
    """Run ``fn`` over one chunk of argument tuples (what ``Master.map`` sends).

    Back ends recognise a chunk by ``item.fn is run_chunk``. A call that
    raises ends the chunk with :class:`ChunkFailed`, which keeps the results
    of the calls before it: ``map`` still yields those, then raises.
    """
    results = []
    try:
        if type(chunk) is SingleArgCalls:
            # map() makes the calls at C speed; extend() keeps the results
            # of the calls before one that raises.
            results.extend(map(fn, chunk.args))
        else:
            for args in chunk:
                results.append(fn(*args))
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        raise ChunkFailed(results, _portable(exc),
                          "".join(traceback.format_exception(exc))) from None
    return results


class SingleArgCalls:
    """A ``map`` chunk over one iterable: the calls ``fn(arg)`` for each of
    ``args``. It iterates as ``(arg,)`` tuples like any chunk, but holds the
    bare arguments, so it is cheaper to build, to pickle and to run than a
    list of 1-tuples."""

    __slots__ = ("args",)

    def __init__(self, args: list):
        self.args = args

    def __len__(self) -> int:
        return len(self.args)

    def __iter__(self):
        return zip(self.args)

    def __eq__(self, other) -> bool:
        return type(other) is SingleArgCalls and other.args == self.args

    def __reduce__(self):
        return SingleArgCalls, (self.args,)

    def __repr__(self) -> str:
        return f"SingleArgCalls({self.args!r})"


class ChunkFailed(Exception):
    """Call number ``len(results)`` of a ``map`` chunk raised ``error``.

    ``results`` are the values of the calls before it, ``traceback_text`` the
    failing call's traceback (the error may have crossed a process boundary,
    which drops tracebacks). ``Master.map`` unpacks it: nobody else sees it.
    """

    def __init__(self, results: list, error: BaseException, traceback_text: str = ""):
        super().__init__(results, error, traceback_text)
        self.results, self.error, self.traceback_text = results, error, traceback_text

    def __reduce__(self):
        return ChunkFailed, (self.results, self.error, self.traceback_text)

    def __str__(self):
        return (f"call {len(self.results)} of a map chunk failed: "
                f"{type(self.error).__name__}: {self.error}")


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives a pickle round trip (so it can travel inside a
    :class:`ChunkFailed`), else a :class:`TaskError` that names it."""
    try:
        import cloudpickle

        cloudpickle.loads(cloudpickle.dumps(exc))
        return exc
    except Exception:
        return TaskError(f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}")


@dataclass(eq=False)
class WorkItem:
    """One call to run: ``fn(*args, **kwargs)``, reported through ``future``."""

    fn: Callable[..., Any]
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    future: Future = field(default_factory=Future)
    timeout: Optional[float] = None
    id: int = field(default_factory=lambda: next(_ids))
    submitted_at: float = field(default_factory=time.time)
    started_at: Optional[float] = None
    finished_at: Optional[float] = None

    def mark_started(self) -> bool:
        """Move the future to RUNNING; False if it was cancelled meanwhile."""
        if not self.future.set_running_or_notify_cancel():
            return False
        self.started_at = time.time()
        return True

    def set_result(self, value: Any) -> None:
        self.finished_at = time.time()
        if not self.future.done():
            self._settle(self.future.set_result, value)

    def set_exception(self, exc: BaseException) -> None:
        self.finished_at = time.time()
        if not self.future.done():
            self._settle(self.future.set_exception, exc)

    def _settle(self, setter: Callable, outcome: Any) -> None:
        # The future's done callbacks run inside ``setter``; Future logs an
        # Exception from one, but a BaseException (SystemExit, ...) would
        # escape into the back end's loop thread and kill it.
        try:
            setter(outcome)
        except InvalidStateError:  # settled meanwhile by another thread
            pass
        except BaseException:
            log.exception("a done callback of task %s raised", self.id)


class Backend(abc.ABC):
    """What an interface implements. Subclasses set ``name``.

    ``submit`` must not block on task execution; ``shutdown(wait=True)`` returns
    only when every submitted item has an outcome and no helper process is left.
    """

    name: ClassVar[str] = "?"
    #: chunk size Master.map uses when the caller gives none (None = automatic)
    default_chunksize: ClassVar[Optional[int]] = None
    #: how ``Master.submit_task(data_files=...)`` reaches a task's directory:
    #: "copy" (workers share this machine's files: copied from their path when
    #: the task starts), "send" (the bytes travel with the task), or None (not
    #: supported: ``submit_task`` refuses data files with a clear error)
    data_files: ClassVar[Optional[str]] = None
    #: keyword options a subclass takes through ``**options`` instead of by name
    extra_options: ClassVar[tuple] = ()

    def __init__(self, workers: Optional[int] = None, **options: Any):
        if options:
            raise self.option_error(options)
        self.workers = workers

    # -- options --------------------------------------------------------------
    @classmethod
    def option_names(cls) -> list:
        """The keyword options this back end accepts (besides ``workers``)."""
        names = [p.name for p in inspect.signature(cls.__init__).parameters.values()
                 if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                 and p.name not in ("self", "workers")]
        return names + [n for n in cls.extra_options if n not in names]

    @classmethod
    def check_options(cls, options: dict) -> None:
        """Raise TypeError for an option this back end does not take, before
        anything is started (a misspelled option must not be ignored)."""
        known = set(cls.option_names())
        unknown = {k: v for k, v in options.items() if k not in known}
        if unknown:
            raise cls.option_error(unknown)

    @classmethod
    def option_error(cls, unknown: dict) -> TypeError:
        persistent = {"initializer", "initargs"} & set(unknown)
        if persistent:
            return TypeError(
                f"the {cls.name} back end does not support {'/'.join(sorted(persistent))}=: "
                f"its workers are not persistent processes that could run it once "
                f"(multicore and mpi support it)")
        known = cls.option_names()
        return TypeError(
            f"unknown option{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(repr(k) for k in unknown)} for the {cls.name} back end "
            f"(it takes: {', '.join(['workers', 'task_timeout', *known])})")

    # -- command line -------------------------------------------------------
    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Add this back end's own options (e.g. ``-p/--project`` for BOINC)."""

    @classmethod
    def options_from_args(cls, args: argparse.Namespace) -> dict:
        """Pick this back end's constructor options out of parsed arguments."""
        return {}

    # -- work ---------------------------------------------------------------
    @abc.abstractmethod
    def submit(self, items: Sequence[WorkItem]) -> None:
        """Queue ``items`` for execution and return at once."""

    def map_chunksize(self, fn: Callable, n_calls: int) -> int:
        """How many calls ``Master.map`` puts in one chunk when the caller
        gives no chunk size: ``default_chunksize`` if set, else
        ``len / (4 * workers)`` (at most 4096). A back end that measures its
        calls can do better (multicore does)."""
        if self.default_chunksize:
            return self.default_chunksize
        workers = max(1, self.workers or os.cpu_count() or 1)
        return max(1, min(4096, math.ceil(n_calls / (4 * workers))))

    def cancel(self, item: WorkItem) -> bool:
        """Cancel an item that has not started; True if it was cancelled."""
        return item.future.cancel()

    @abc.abstractmethod
    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        """Stop accepting work; with ``cancel_futures`` drop queued items."""

    def status(self) -> dict:
        """Back-end specific facts for ``Master.get_status()`` (e.g. workers)."""
        return {"workers": self.workers}
