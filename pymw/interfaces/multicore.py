"""PyMW's multicore interface: boinc-pymw's multicore back end."""

import sys

from ._base import Interface, check_python


class MulticoreInterface(Interface):
    backend = "multicore"

    def __init__(self, num_workers=1, python_loc=sys.executable):
        check_python(python_loc)
        super().__init__(num_workers)
