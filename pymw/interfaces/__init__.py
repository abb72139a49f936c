"""PyMW's "one switch": ``parse_options`` and ``get_interface``.

The options keep PyMW's names and ``dest``s, so a script that reads
``options.n_workers`` or adds its own options to the parser runs unchanged::

    -i/--interface    dest interface         generic (default), multicore, mpi,
                                             condor, boinc, boinc-local
    -n/--num_workers  dest n_workers         default "4"
    -g/--ganga_loc    dest g_loc             (Ganga is not available here)
    -p/--project_home dest p_home            the BOINC project directory
    -c/--app_path     dest custom_app_dir    (ignored: install-app builds the app)
    -a/--app_args     dest custom_app_args   (ignored)
"""

from __future__ import annotations

import sys
from optparse import OptionParser

from .._errors import InterfaceException
from . import boinc, condor, ganga, generic, grid_simulator, mpi, multicore
from ._base import Interface
from .boinc import BOINCInterface, BOINCLocalInterface
from .condor import CondorInterface
from .ganga import GANGAInterface
from .generic import GenericInterface
from .grid_simulator import GridSimulatorInterface
from .mpi import MPIInterface
from .multicore import MulticoreInterface

__all__ = ["generic", "boinc", "condor", "ganga", "mpi", "multicore", "grid_simulator",
           "parse_options", "get_interface", "Interface", "GenericInterface",
           "MulticoreInterface", "MPIInterface", "CondorInterface", "BOINCInterface",
           "BOINCLocalInterface", "GANGAInterface", "GridSimulatorInterface"]

#: what ``-i`` accepts
NAMES = ("generic", "multicore", "mpi", "condor", "boinc", "boinc-local")


def parse_options(parser: OptionParser | None = None, args: list | None = None):
    """Add PyMW's standard options to ``parser`` (a new OptionParser if None)
    and parse ``args`` (``sys.argv[1:]`` if None); returns ``(options, args)``."""
    if parser is None:
        parser = OptionParser(usage="usage: %prog")
    if args is None:
        args = sys.argv[1:]
    parser.add_option("-i", "--interface", dest="interface", default="generic",
                      help=f"the interface: {'/'.join(NAMES)} (default generic, which runs "
                           f"as multicore)", metavar="INTERFACE")
    parser.add_option("-n", "--num_workers", dest="n_workers", default="4",
                      help="number of workers (default 4)", metavar="N")
    parser.add_option("-g", "--ganga_loc", dest="g_loc", default="~/Ganga/bin/ganga",
                      help="Ganga executable (the Ganga interface is not available in "
                           "boinc-pymw)", metavar="FILE")
    parser.add_option("-p", "--project_home", dest="p_home", default="",
                      help="directory of the BOINC project (-i boinc)", metavar="DIR")
    parser.add_option("-c", "--app_path", dest="custom_app_dir", default="",
                      help="ignored: boinc_pymw install-app builds the BOINC app", metavar="DIR")
    parser.add_option("-a", "--app_args", dest="custom_app_args", default="",
                      help="ignored: boinc_pymw install-app builds the BOINC app", metavar="ARGS")
    return parser.parse_args(args)


def get_interface(options) -> Interface:
    """The interface ``options`` (from :func:`parse_options`) select."""
    name = getattr(options, "interface", None) or "generic"
    try:
        n_workers = int(getattr(options, "n_workers", 4))
    except ValueError:
        raise InterfaceException(f"-n/--num_workers must be a number, "
                                 f"not {options.n_workers!r}") from None
    if name == "generic":
        return GenericInterface(num_workers=n_workers)
    if name == "multicore":
        return MulticoreInterface(num_workers=n_workers)
    if name == "mpi":
        return MPIInterface(num_workers=n_workers)
    if name == "condor":
        return CondorInterface()
    if name == "boinc":
        return BOINCInterface(project_home=getattr(options, "p_home", ""),
                              custom_app_dir=getattr(options, "custom_app_dir", ""),
                              custom_args=[getattr(options, "custom_app_args", "")])
    if name == "boinc-local":
        return BOINCLocalInterface(project_home=getattr(options, "p_home", "") or None,
                                   num_workers=n_workers)
    if name == "ganga":
        return GANGAInterface()
    if name in ("grid_simulator", "gridsim", "grid-simulator"):
        return GridSimulatorInterface()
    raise InterfaceException(f"unknown interface {name!r}", f"known: {', '.join(NAMES)}")
