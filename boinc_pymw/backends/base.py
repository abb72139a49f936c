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
import itertools
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Optional, Sequence

_ids = itertools.count(1)


def run_chunk(fn: Callable, chunk: list) -> list:
    """Run ``fn`` over one chunk of argument tuples (what ``Master.map`` sends).

    Back ends recognise a chunk by ``item.fn is run_chunk``.
    """
    return [fn(*args) for args in chunk]


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
            self.future.set_result(value)

    def set_exception(self, exc: BaseException) -> None:
        self.finished_at = time.time()
        if not self.future.done():
            self.future.set_exception(exc)


class Backend(abc.ABC):
    """What an interface implements. Subclasses set ``name``.

    ``submit`` must not block on task execution; ``shutdown(wait=True)`` returns
    only when every submitted item has an outcome and no helper process is left.
    """

    name: ClassVar[str] = "?"
    #: chunk size Master.map uses when the caller gives none (None = automatic)
    default_chunksize: ClassVar[Optional[int]] = None

    def __init__(self, workers: Optional[int] = None, **options: Any):
        self.workers = workers
        self.options = options

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

    def cancel(self, item: WorkItem) -> bool:
        """Cancel an item that has not started; True if it was cancelled."""
        return item.future.cancel()

    @abc.abstractmethod
    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        """Stop accepting work; with ``cancel_futures`` drop queued items."""

    def status(self) -> dict:
        """Back-end specific facts for ``Master.get_status()`` (e.g. workers)."""
        return {"workers": self.workers}
