"""The third-party packages an app version carries, as the worker finds them.

install-app packs an app's wheels (``--requirements``/``--wheel``) into one
signed app version file, logical name ``python_packages.zip``. The launcher
unpacks it once next to itself, as ``<physical name>.unpacked-<crc>`` in the
project directory (extension modules need real files), and passes that
directory as ``--packages DIR``. Under a client the worker accepts only such a
directory of an app version file: a workunit's command line cannot point it
anywhere else.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Optional

from ..errors import BoincPymwError

PACKAGES_ARCHIVE_NAME = "python_packages.zip"
_UNPACKED = re.compile(r"(?P<archive>.+)\.unpacked-[0-9a-f]{8}")
_EXTENSION = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(\.[A-Za-z0-9_-]+)?\.(so|pyd)")


class PackagesError(BoincPymwError):
    """--packages names no unpacked package set of this app version."""


def check_packages_dir(path: Path, app_files: Optional[set], boinc_module=None) -> Path:
    """``path`` resolved, if it is an unpacked package set the worker may use."""
    if not path.is_dir():
        raise PackagesError(f"--packages {path}: no such directory")
    if app_files is not None:
        match = _UNPACKED.fullmatch(path.name)
        if path.is_symlink() or not match or match.group("archive") not in app_files \
                or not (path.parent / match.group("archive")).is_file():
            raise PackagesError(f"--packages {path} is not the unpacked packages of an app version "
                                "file; a workunit cannot bring packages")
    return path.resolve()


def carried_modules(directory: Path) -> dict[str, Path]:
    """Top-level module name -> ``directory`` for what an unpacked package set holds."""
    modules = {}
    for entry in sorted(os.listdir(directory)):
        full = directory / entry
        name = None
        if full.is_dir():
            if entry.isidentifier():
                name = entry
        elif entry.endswith(".py"):
            name = entry[:-3]
        else:
            match = _EXTENSION.fullmatch(entry)
            if match:
                name = match.group("name")
        if name and name.isidentifier() and not name.startswith("_"):
            modules[name] = directory
    return modules
