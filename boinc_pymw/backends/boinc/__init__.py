"""BOINC back ends: ``-i boinc`` (``server``: a project's database and
results store) and ``-i boinc-local`` (``local``: the whole pipeline on this
machine), and what both share: call encoding (``calls``), the results store
(``results_store``) and outcome decoding (``outcomes``)."""

from .outcomes import WorkunitFailed
from .server import BoincBackend, cancel_workunits, find_batch

__all__ = ["BoincBackend", "WorkunitFailed", "cancel_workunits", "find_batch"]
