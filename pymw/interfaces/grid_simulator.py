"""PyMW's grid simulator is not part of boinc-pymw."""

from ._base import Unavailable


class GridSimulatorInterface(Unavailable):
    pymw_name = "grid simulator"
    instead = ("boinc-pymw runs tasks for real; -i boinc-local plays BOINC's whole pipeline "
               "(validator, assimilator, replicas) on this machine")
