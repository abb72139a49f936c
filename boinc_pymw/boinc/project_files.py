"""Directories and files inside a project, made the way BOINC makes them.

BOINC's web server (Apache, as www-data) serves the download hierarchy and
its file_upload_handler writes the upload hierarchy; BOINC's own tools make
every such directory with ``mkdir(path, 0771)`` under ``umask(0)``
(lib/filesys.cpp ``boinc_mkdir``), so the mode never depends on the umask
of whoever runs the command. ``os.makedirs(mode=...)`` does depend on it
(0771 under umask 022 is 0751, under 077 it is 0700: Apache answers 403 for
every input file). Everything here sets the mode explicitly instead:

* directories: 0771 (group rwx, others may pass through but not list);
* files the web server or the client reads (inputs, app version files,
  ``.md5`` caches): 0644.

A fan-out directory that already exists but that others cannot pass through
(made by an older boinc-pymw under umask 022: 0750) gets o+x if it is ours.
"""

from __future__ import annotations

import os
import stat
from typing import Union

#: BOINC's boinc_mkdir mode.
DIR_MODE = 0o771
#: What BOINC's web server and clients must be able to read.
FILE_MODE = 0o644

PathLike = Union[str, os.PathLike]


def make_project_dir(path: PathLike, *, repair: bool = False) -> list:
    """``mkdir -p path`` with every new directory 0771, whatever the umask.

    Returns the directories it created, outermost first (so a caller can
    undo them). With ``repair``, an existing ``path`` of ours that others
    cannot pass through gets o+x (see :func:`repair_dir_mode`).
    """
    path = os.path.abspath(os.fspath(path))
    missing = []
    probe = path
    while not os.path.isdir(probe):
        if os.path.lexists(probe):
            raise FileExistsError(f"{probe} exists and is not a directory")
        missing.append(probe)
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    created = []
    for directory in reversed(missing):
        try:
            os.mkdir(directory, DIR_MODE)
        except FileExistsError:
            if not os.path.isdir(directory):
                raise
        else:
            created.append(directory)
        os.chmod(directory, DIR_MODE)
    if repair and not missing:
        repair_dir_mode(path)
    return created


def repair_dir_mode(path: PathLike) -> None:
    """Let others pass through a directory of ours again (add g+x, o+x)."""
    try:
        st = os.stat(path)
    except OSError:
        return
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o011 != 0o011 and st.st_uid == os.geteuid():
        try:
            os.chmod(path, mode | 0o011)
        except OSError:
            pass


def make_readable(target: Union[PathLike, int]) -> None:
    """Mode 0644 for a file (path or open descriptor) others must read."""
    if isinstance(target, int):
        os.fchmod(target, FILE_MODE)
    else:
        os.chmod(target, FILE_MODE)
