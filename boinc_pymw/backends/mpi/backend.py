"""MPI back end (``-i mpi``): tasks run on MPI ranks, as MPI messages.

    rank 0 (Master)                                 ranks 1..N (workers)
    MPIBackend.submit --> Dispatcher thread --TASKS--> _worker.serve
          futures <------- RESULTS / HEARTBEAT <--------'

No shared file system is assumed: calls and results are cloudpickled into MPI
messages (``_protocol``). Run with workers from mpiexec::

    mpiexec -n 5 python -m boinc_pymw.backends.mpi script.py -i mpi   # 4 workers

(``mpiexec -n 5 python script.py`` works too: ranks 1..4 turn into workers when
the script creates its Master.) Run alone, the master spawns ``-n`` workers
with MPI_Comm_spawn if the MPI library can: PyPI's ``mpich`` wheel (5.x) can,
Debian 12's MPICH 4.0.2 (ch4:ucx) cannot. A spawned worker that dies takes the
master with it (hydra's singleton mpiexec kills the job): the WorkerLost
handling below is for the mpiexec mode.

A task's exception is re-raised by its future with the remote traceback as
``__cause__``. A rank that dies fails its tasks with ``WorkerLost`` once its
heartbeat stops; with MPICH run ``mpiexec -disable-auto-cleanup`` or hydra
kills the whole job, the master included, as soon as one rank dies.
"""

from __future__ import annotations

import argparse
import os
import threading
import warnings
from concurrent.futures import wait as wait_futures
from typing import Any, Callable, Optional, Sequence

from ..base import Backend, WorkItem

DEFAULT_HEARTBEAT_TIMEOUT = 30.0


class MPIBackend(Backend):
    """Runs work items on MPI worker ranks (see the module docstring)."""

    name = "mpi"
    data_files = "send"  # ranks may be on other machines: the bytes travel with the task

    def __init__(self, workers: Optional[int] = None, *,
                 heartbeat_timeout: float = DEFAULT_HEARTBEAT_TIMEOUT,
                 initializer: Optional[Callable] = None, initargs: tuple = (),
                 **options: Any):
        from . import _runtime as runtime
        from ._protocol import HEARTBEAT_INTERVAL, dumps

        if options:  # before any rank is started or spawned
            raise self.option_error(options)
        initializer_blob = None
        if initializer is not None:
            if not callable(initializer):
                raise TypeError(f"initializer must be callable, "
                                f"not {type(initializer).__name__}")
            try:
                initializer_blob = dumps((initializer, tuple(initargs)))
            except Exception as exc:
                raise TypeError(f"cannot send the initializer to the MPI workers: {exc}") from exc

        if heartbeat_timeout is None or heartbeat_timeout < 2 * HEARTBEAT_INTERVAL:
            raise ValueError(f"heartbeat_timeout must be at least {2 * HEARTBEAT_INTERVAL:g} s "
                             f"(workers send a heartbeat every {HEARTBEAT_INTERVAL:g} s)")
        MPI = runtime.import_mpi()
        world = MPI.COMM_WORLD
        if world.Get_size() > 1:
            if world.Get_rank() != 0:
                runtime.serve_as_world_worker()  # never returns
            self._pool = runtime.world_pool(heartbeat_timeout)
            self._owns_pool = False
            available = len(self._pool.workers)
            if workers is not None and workers != available:
                warnings.warn(f"-n {workers} ignored: mpiexec started {available} worker "
                              f"rank(s) besides the master", stacklevel=2)
        else:
            count = workers if workers is not None else (os.cpu_count() or 1)
            if count < 1:
                raise ValueError("the MPI back end needs at least one worker (-n 1 or more)")
            self._pool = runtime.spawn_pool(count, heartbeat_timeout)
            self._owns_pool = True
        super().__init__(workers=len(self._pool.workers))
        # under mpiexec the ranks serve every Master of the script: each sets its own
        self._pool.set_initializer(initializer_blob)
        self.heartbeat_timeout = heartbeat_timeout
        self._lock = threading.Lock()
        self._items: set = set()
        self._closed = False

    # -- command line -------------------------------------------------------
    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group("MPI back end (-i mpi)")
        group.add_argument(
            "--mpi-heartbeat-timeout", type=float, default=DEFAULT_HEARTBEAT_TIMEOUT,
            metavar="SECONDS",
            help="declare a worker rank lost (its tasks fail with WorkerLost) after this "
                 f"long without a message from it (default {DEFAULT_HEARTBEAT_TIMEOUT:g})")

    @classmethod
    def options_from_args(cls, args: argparse.Namespace) -> dict:
        value = getattr(args, "mpi_heartbeat_timeout", None)
        return {} if value is None else {"heartbeat_timeout": value}

    # -- work ---------------------------------------------------------------
    def submit(self, items: Sequence[WorkItem]) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot schedule new work after shutdown")
            self._items.update(items)
        for item in items:
            item.future.add_done_callback(lambda _f, it=item: self._forget(it))
        self._pool.submit(items)

    def _forget(self, item: WorkItem) -> None:
        with self._lock:
            self._items.discard(item)

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        with self._lock:
            self._closed = True
            items = list(self._items)
        if cancel_futures:
            for item in items:
                item.future.cancel()  # only succeeds for items not yet sent
        if wait:
            wait_futures([item.future for item in items])
        if self._owns_pool:
            from . import _runtime as runtime

            if wait or not items:
                runtime.stop_spawned(self._pool)
            else:  # stop the spawned workers once the remaining items end
                def stop_later(futures=[item.future for item in items], pool=self._pool):
                    wait_futures(futures)
                    runtime.stop_spawned(pool)

                threading.Thread(target=stop_later, daemon=True).start()

    def status(self) -> dict:
        pool = self._pool
        return {"workers": len(pool.live_workers()), "mpi_mode": pool.mode,
                "lost_workers": list(pool.lost)}

