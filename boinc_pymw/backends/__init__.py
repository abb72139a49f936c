"""Back ends ("interfaces") by name, imported only when chosen.

A back end is a :class:`boinc_pymw.backends.base.Backend` subclass; to add one,
add a line here.
"""

from __future__ import annotations

import importlib

from ..errors import UnknownInterface

#: interface name -> "module:Class"
REGISTRY = {
    "multicore": "boinc_pymw.backends.multicore:MulticoreBackend",
    "mpi": "boinc_pymw.backends.mpi:MPIBackend",
    "condor": "boinc_pymw.backends.condor:CondorBackend",
    "boinc": "boinc_pymw.backends.boinc:BoincBackend",
    "boinc-local": "boinc_pymw.backends.boinc.local:BoincLocalBackend",
}

DEFAULT = "multicore"


def names():
    return sorted(REGISTRY)


def get(name: str):
    """Return the back-end class for ``name`` or raise UnknownInterface."""
    try:
        target = REGISTRY[name]
    except KeyError:
        raise UnknownInterface(
            f"unknown interface {name!r}; known interfaces: {', '.join(names())}"
        ) from None
    module_name, cls_name = target.split(":")
    return getattr(importlib.import_module(module_name), cls_name)
