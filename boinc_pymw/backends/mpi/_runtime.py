"""Where the MPI back end's workers come from, and how the MPI job ends.

Two ways to get worker ranks:

* ``mpiexec -n N+1 python -m boinc_pymw.backends.mpi script.py ...`` (or
  ``mpiexec -n N+1 python script.py``): ranks 1..N serve tasks, rank 0 is the
  master. One pool per process (:func:`world_pool`), shared by every Master
  rank 0 creates, stopped when rank 0 exits.
* the master runs alone: :func:`spawn_pool` starts N workers with
  ``MPI_Comm_spawn``, one intercommunicator each, for one Master.

MPI_Finalize waits for every rank, so it hangs once a rank has died. mpi4py's
own finalize-at-exit is therefore switched off when this module imports MPI
first, and :func:`_at_exit` finalizes only when no rank was lost.

A worker process ends with :func:`exit_process`, not ``os._exit``: MPICH 4.1
and later tell the process manager "finalize" from a C ``atexit`` handler, and
hydra treats a rank that closes its PMI connection without it as crashed (it
then kills the other ranks, the master included).
"""

from __future__ import annotations

import atexit
import ctypes
import os
import shutil
import sys
import threading

from . import _protocol as wire
from ._worker import serve
from ...errors import BoincPymwError

_lock = threading.Lock()
_world = None          # the Dispatcher over COMM_WORLD ranks 1..N (rank 0 only)
_we_finalize = False   # True when this module turned mpi4py's auto-finalize off
_lost_ranks = False
_registered = False
_spawned: list = []    # spawned pools not stopped yet


def import_mpi():
    """Import ``mpi4py.MPI`` with a clear error when it is missing."""
    global _we_finalize, _registered
    if "mpi4py.MPI" not in sys.modules:
        try:
            import mpi4py
        except ImportError:
            raise BoincPymwError(
                "the MPI back end needs mpi4py: pip install 'boinc-pymw[mpi]' "
                "(or PyPI's MPICH with mpi4py's binary wheel: pip install mpich mpi4py; or mpi4py "
                "built against your own MPI: MPICC=mpicc pip install --no-binary mpi4py mpi4py)"
            ) from None
        mpi4py.rc.finalize = False
        _we_finalize = True
    if not _registered:
        # Also when the user imported mpi4py.MPI first: the worker ranks must
        # get STOP before anything finalizes MPI, or the job never ends.
        atexit.register(_at_exit)
        _registered = True
    from mpi4py import MPI

    return MPI


def world_pool(heartbeat_timeout: float):
    """The pool of ranks 1..N of COMM_WORLD, created once on rank 0."""
    global _world
    from ._dispatcher import Dispatcher, RemoteWorker

    MPI = import_mpi()
    with _lock:
        if _world is None:
            comm = MPI.COMM_WORLD
            workers = [RemoteWorker(comm, r, f"rank {r}") for r in range(1, comm.Get_size())]
            _world = Dispatcher(MPI, workers, heartbeat_timeout, mode="mpiexec")
        return _world


def spawn_pool(n: int, heartbeat_timeout: float):
    """Start ``n`` worker processes with MPI_Comm_spawn, one intercommunicator
    each (so one dying does not take down a shared communicator)."""
    from ._dispatcher import Dispatcher, RemoteWorker

    MPI = import_mpi()
    use_library_mpiexec(MPI)
    comms = []
    try:
        for _ in range(n):
            comms.append(MPI.COMM_SELF.Spawn(
                sys.executable, ["-m", "boinc_pymw.backends.mpi._spawned"], maxprocs=1))
    except MPI.Exception as exc:
        for comm in comms:
            wire.send(MPI, comm, 0, wire.STOP, wire.encode({"finalize": True}))
            comm.Disconnect()
        reason = str(exc).strip().splitlines()[-1]
        raise BoincPymwError(
            f"this MPI library could not spawn worker processes ({reason}). Start the "
            f"workers with mpiexec instead: mpiexec -n {n + 1} {os.path.basename(sys.executable)} "
            f"-m boinc_pymw.backends.mpi your_script.py ... (rank 0 is the master)"
        ) from None
    workers = [RemoteWorker(c, 0, f"spawned worker {i + 1}") for i, c in enumerate(comms)]
    pool = Dispatcher(MPI, workers, heartbeat_timeout, mode="spawn")
    with _lock:
        _spawned.append(pool)
    return pool


def _loaded_libmpi() -> str | None:
    """Path of the MPI library this process has loaded (Linux), or None."""
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.split(None, 5)[-1].strip()
                name = os.path.basename(path)
                if name.startswith(("libmpi.so", "libmpich.so", "libmpi_abi.so")):
                    return path
    except OSError:
        pass
    return None


def library_mpiexec(MPI) -> str | None:
    """The ``mpiexec`` shipped with the MPICH library loaded here (the PyPI
    ``mpich`` package puts it in the venv's bin/, Debian's in /usr/bin), or
    None when the library is not MPICH or no such mpiexec is found."""
    if not MPI.Get_library_version().startswith("MPICH"):
        return None
    libmpi = _loaded_libmpi()
    if libmpi is None:
        return None
    libdir = os.path.dirname(os.path.realpath(libmpi))
    for up in (os.pardir, os.path.join(os.pardir, os.pardir)):
        candidate = os.path.normpath(os.path.join(libdir, up, "bin", "mpiexec"))
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def use_library_mpiexec(MPI) -> None:
    """Put the loaded MPICH's own ``mpiexec`` first on PATH.

    A master started without mpiexec is an MPI singleton; its first
    MPI_Comm_spawn makes MPICH run ``mpiexec -pmi_args ...`` found on PATH.
    Another MPICH's mpiexec (say Debian's /usr/bin/mpiexec next to the PyPI
    ``mpich`` wheel) rejects those arguments and the spawn then waits forever.
    """
    mpiexec = library_mpiexec(MPI)
    if mpiexec is None:
        return
    first = shutil.which("mpiexec")
    if first is not None and os.path.realpath(first) == os.path.realpath(mpiexec):
        return
    os.environ["PATH"] = os.pathsep.join(
        [os.path.dirname(mpiexec)] + [p for p in os.environ.get("PATH", "").split(os.pathsep) if p])


def exit_process(code: int = 0) -> None:
    """End a worker process now, without running the rest of the user's script
    or Python's teardown, but with the C library's ``atexit`` handlers: MPICH
    4.1+ sends its PMI "finalize" from one (see the module docstring)."""
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        libc = ctypes.CDLL(None)
        libc.exit.argtypes = [ctypes.c_int]
        libc.exit(code)
    except (OSError, AttributeError):
        pass
    os._exit(code)


def stop_spawned(dispatcher) -> None:
    global _lost_ranks
    with _lock:
        if dispatcher not in _spawned:
            return  # already stopped
        _spawned.remove(dispatcher)
    dispatcher.stop()
    if dispatcher.lost:
        _lost_ranks = True
    for worker in dispatcher.workers:
        if worker.alive:  # Disconnect is collective: skip ranks that are gone
            worker.comm.Disconnect()


def serve_as_world_worker() -> None:
    """Ranks 1..N: serve rank 0 until it stops the pool, then end this process
    (the rest of the user's script is rank 0's alone)."""
    MPI = import_mpi()
    finalize = serve(MPI, MPI.COMM_WORLD, 0)
    if finalize:
        MPI.Finalize()
    exit_process(0)


def stop_world() -> None:
    """Rank 0: stop the world pool (workers leave serve_as_world_worker)."""
    global _world, _lost_ranks
    with _lock:
        pool, _world = _world, None
    if pool is None:
        MPI = import_mpi()
        comm = MPI.COMM_WORLD
        if comm.Get_size() > 1 and comm.Get_rank() == 0 and not MPI.Is_finalized():
            # No Master was ever made: the workers still wait for STOP.
            from ._dispatcher import Dispatcher, RemoteWorker

            workers = [RemoteWorker(comm, r, f"rank {r}") for r in range(1, comm.Get_size())]
            pool = Dispatcher(MPI, workers, 60.0, mode="mpiexec")
        else:
            return
    pool.stop()
    if pool.lost:
        _lost_ranks = True


def _at_exit() -> None:
    MPI = sys.modules.get("mpi4py.MPI")
    if MPI is None or not MPI.Is_initialized() or MPI.Is_finalized():
        return
    if MPI.COMM_WORLD.Get_size() > 1 and MPI.COMM_WORLD.Get_rank() == 0:
        stop_world()
    for pool in list(_spawned):  # Masters never shut down: release their workers
        stop_spawned(pool)
    if _we_finalize and not _lost_ranks:
        MPI.Finalize()


def main(argv=None) -> int:
    """``python -m boinc_pymw.backends.mpi script.py|-m module [args...]``."""
    import runpy

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: mpiexec -n N+1 python -m boinc_pymw.backends.mpi script.py [args...]\n"
              "       mpiexec -n N+1 python -m boinc_pymw.backends.mpi -m module [args...]\n"
              "Rank 0 runs the script; ranks 1..N are its workers (-i mpi).",
              file=sys.stderr)
        return 2
    MPI = import_mpi()
    if MPI.COMM_WORLD.Get_rank() != 0:
        serve_as_world_worker()
    os.environ.setdefault("BOINC_PYMW_INTERFACE", "mpi")
    if argv[0] == "-m":
        if len(argv) < 2:
            print("boinc_pymw.backends.mpi: -m needs a module name", file=sys.stderr)
            return 2
        sys.argv = argv[1:]
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    else:
        if not os.path.isfile(argv[0]):
            print(f"boinc_pymw.backends.mpi: no such script: {argv[0]}", file=sys.stderr)
            return 2  # the worker ranks are released at exit
        sys.argv = argv
        sys.path.insert(0, os.path.dirname(os.path.abspath(argv[0])))
        runpy.run_path(argv[0], run_name="__main__")
    return 0
