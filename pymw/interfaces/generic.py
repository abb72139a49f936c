"""PyMW's generic interface: here it runs on the multicore back end."""

import sys

from ._base import Interface, check_python


class GenericInterface(Interface):
    """PyMW ran one Python process per task; boinc-pymw's multicore back end
    runs the same tasks in persistent worker processes."""

    backend = "multicore"

    def __init__(self, num_workers=1, python_loc=sys.executable):
        check_python(python_loc)
        super().__init__(num_workers)
