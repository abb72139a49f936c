"""MPI back end (``-i mpi``): pool (``backend``), dispatcher, worker loop,
runtime (where ranks come from) and the ``python -m`` entry point."""

from .backend import MPIBackend

__all__ = ["MPIBackend"]
