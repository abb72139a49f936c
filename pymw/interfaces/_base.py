"""What a PyMW interface object is here: a choice of boinc-pymw back end.

PyMW's interfaces ran tasks themselves (``execute_task``); here they only say
which back end ``PyMW_Master`` starts, with how many workers and which of its
options. PyMW's constructor arguments keep their names.
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import Any, Optional

from .._errors import InterfaceException


class Interface:
    """A back-end choice: ``backend`` (a boinc-pymw interface name), the
    number of workers and the back end's options."""

    backend = "multicore"

    def __init__(self, num_workers: Optional[int] = None, **options: Any):
        if num_workers is not None:
            num_workers = int(num_workers)
            if num_workers < 1:
                raise InterfaceException(f"num_workers must be at least 1, not {num_workers}")
        self.num_workers = num_workers
        self.options = options

    def __repr__(self):
        return f"<{type(self).__name__}: boinc-pymw back end {self.backend!r}, " \
               f"{self.num_workers} workers>"


def check_python(python_loc: Optional[str]) -> None:
    """Workers run the master's own interpreter; another one cannot be chosen."""
    if not python_loc:
        return
    if os.path.realpath(python_loc) != os.path.realpath(sys.executable):
        raise InterfaceException(
            f"python_loc={python_loc!r}: boinc-pymw's local workers run the master's own "
            f"interpreter ({sys.executable}); start the script with that Python instead")


def ignored(what: str, why: str) -> None:
    warnings.warn(f"{what} is ignored by boinc-pymw: {why}", stacklevel=3)


class Unavailable(Interface):
    """A PyMW interface boinc-pymw does not have: constructing it fails."""

    pymw_name = "?"
    instead = ""

    def __init__(self, *args: Any, **kwargs: Any):
        raise InterfaceException(
            f"PyMW's {self.pymw_name} interface is not available in boinc-pymw",
            self.instead)
