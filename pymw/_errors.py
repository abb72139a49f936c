"""PyMW's two exception classes (kept in a module of their own so that both
``pymw.pymw`` and ``pymw.interfaces`` can raise them)."""

from boinc_pymw.errors import BoincPymwError


class TaskException(BoincPymwError):
    """A task handle was misused: not a task, never submitted, already
    returned, or an executable that is not a function. (A task's own
    exception is re-raised by ``get_result`` with its own type.)"""

    def __init__(self, value):
        super().__init__(value)
        self.param = value

    def __str__(self):
        return str(self.param)


class InterfaceException(BoincPymwError):
    """An interface cannot be used: unknown, not available in boinc-pymw, or
    a custom PyMW interface object."""

    def __init__(self, value, detail_str=None):
        super().__init__(value)
        self.param = value
        self.details = detail_str or ""

    def __str__(self):
        return f"{self.param}\n{self.details}" if self.details else str(self.param)
