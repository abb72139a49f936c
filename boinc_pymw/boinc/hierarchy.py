"""BOINC's upload/download directory fan-out (sched_util_basic.cpp dir_hier_*).

A project with ``<uldl_dir_fanout>N</uldl_dir_fanout>`` keeps file ``name``
in the subdirectory ``"%x" % (h % N)`` of the download (or upload) root,
where ``h`` is the number written by hex digits 1..7 of md5(name) (the first
digit is skipped). Fan-out 0 means no subdirectory. Clients fetch from the
same relative place under ``download_url``. tests/oracle compares these
functions with libsched's for thousands of names.
"""

from __future__ import annotations

import hashlib
import os

from .project_files import make_project_dir


def filename_hash(name: str, fanout: int) -> str:
    """The subdirectory (lower-case hex, no padding) for ``name``; fanout > 0."""
    digest = hashlib.md5(name.encode("utf-8")).hexdigest()
    return "%x" % (int(digest[1:8], 16) % fanout)


def dir_hier_path(name: str, root: str, fanout: int, *, create: bool = False) -> str:
    """Path of ``name`` under ``root``; with ``create`` the subdirectory is made
    as BOINC makes it (0771 whatever the umask, so the web server can enter it)."""
    fanout = int(fanout)
    if fanout <= 0:
        return os.path.join(root, name)
    directory = os.path.join(root, filename_hash(name, fanout))
    if create:
        make_project_dir(directory, repair=True)
    return os.path.join(directory, name)


def dir_hier_url(name: str, base_url: str, fanout: int) -> str:
    """URL of ``name`` under ``base_url`` (download_url or upload_url)."""
    fanout = int(fanout)
    if fanout <= 0:
        return f"{base_url}/{name}"
    return f"{base_url}/{filename_hash(name, fanout)}/{name}"
