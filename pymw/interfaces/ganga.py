"""PyMW's Ganga interface is not part of boinc-pymw."""

from ._base import Unavailable


class GANGAInterface(Unavailable):
    pymw_name = "ganga"
    instead = "use -i condor for a batch system, or -i multicore / -i mpi"
