"""Multicore back end (``-i multicore``, the default): the pool and event loop
(``backend``), the wire format (``_wire``) and the worker process (``_worker``)."""

from .backend import MulticoreBackend

__all__ = ["MulticoreBackend"]
