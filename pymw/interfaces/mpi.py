"""PyMW's MPI interface: boinc-pymw's MPI back end (no shared file system needed)."""

from ._base import Interface


class MPIInterface(Interface):
    backend = "mpi"

    def __init__(self, num_workers=1):
        super().__init__(num_workers)
