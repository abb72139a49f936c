"""Entry point of a worker started with MPI_Comm_spawn (``spawn_pool``).

Kept apart from ``_worker`` (the serve loop) so that ``_runtime`` can import
the loop and this module can import ``_runtime`` without a circle.
"""

from __future__ import annotations

import sys

from ._runtime import exit_process, import_mpi
from ._worker import serve


def main() -> int:
    """Entry point of a spawned worker: serve the parent, then disconnect."""
    MPI = import_mpi()
    parent = MPI.Comm.Get_parent()
    if parent == MPI.COMM_NULL:
        print("boinc_pymw.backends.mpi._spawned: not started by MPI_Comm_spawn; "
              "use 'mpiexec -n N+1 python -m boinc_pymw.backends.mpi script.py'",
              file=sys.stderr)
        return 2
    finalize = serve(MPI, parent, 0)
    if finalize:
        parent.Disconnect()
        MPI.Finalize()
    exit_process(0)


if __name__ == "__main__":
    sys.exit(main())
