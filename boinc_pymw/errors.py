"""Exceptions shared by every back end."""


class BoincPymwError(Exception):
    """Base class for errors raised by boinc_pymw itself (not by user tasks)."""


class UnknownInterface(BoincPymwError, ValueError):
    """The requested back end does not exist; the message lists the known ones."""


class TaskError(BoincPymwError):
    """A task failed somewhere we cannot re-raise its own exception type.

    Back ends that can ship the original exception re-raise it instead and
    attach the remote traceback as ``__cause__`` (a :class:`RemoteTraceback`).
    """


class WorkerLost(TaskError):
    """The worker running a task died (killed, crashed, or its rank vanished)."""


class TaskTimeout(TaskError, TimeoutError):
    """A task ran longer than its per-task timeout and was stopped."""


class RemoteTraceback(Exception):
    """Carries the formatted traceback of an exception raised in a worker."""

    def __init__(self, tb: str):
        super().__init__(tb)
        self.tb = tb

    def __str__(self):
        return self.tb
