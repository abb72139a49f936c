"""PyMW's ``data_files``: a task runs in its own directory holding its files.

``Master.submit_task(fn, ..., data_files=[...])`` sends
``run_in_task_directory(fn, args, files)`` instead of ``fn(*args)``. On the
worker it makes a fresh directory, puts each data file there under its base
name, runs the call with that directory as the current one (so
``open("words.txt")`` works, as it did under PyMW), then removes it::

    master:  DataFile(name, path)           "copy": workers share this machine
             DataFile(name, content=bytes)  "send": the bytes travel with the task
                     |
    worker:  mkdtemp -> copy / write files -> chdir -> fn(*args) -> chdir back -> rm -r

Back ends choose the way with ``Backend.data_files``. The current directory
belongs to the whole process, so this is only for back ends whose workers run
one task at a time (processes, MPI ranks), never threads.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Optional, Sequence


@dataclass(frozen=True)
class DataFile:
    """One file for the task's directory: copied from ``path``, or ``content``."""

    name: str
    path: Optional[str] = None
    content: Optional[bytes] = None


def collect(paths: Iterable[str], mode: str) -> tuple:
    """Check the master's ``data_files`` and describe them for the worker.

    Every file must exist now (a missing one fails at submission, not on a
    worker), and two files may not share a base name (one would hide the
    other). ``mode`` is the back end's ``data_files``: "copy" or "send".
    """
    if isinstance(paths, (str, bytes, os.PathLike)):
        raise TypeError("data_files must be a list of paths, not one path")
    files, seen = [], {}
    for path in paths:
        path = os.fspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"data file not found: {path}")
        if not os.path.isfile(path):
            raise IsADirectoryError(f"data file is not a regular file: {path}")
        name = os.path.basename(path)
        if name in seen:
            raise ValueError(f"data files {seen[name]} and {path} have the same name {name!r}; "
                             f"in the task's directory one would replace the other")
        seen[name] = path
        if mode == "copy":
            files.append(DataFile(name, path=os.path.abspath(path)))
        elif mode == "send":
            with open(path, "rb") as fh:
                files.append(DataFile(name, content=fh.read()))
        else:
            raise ValueError(f"unknown data_files mode {mode!r}")
    return tuple(files)


def run_in_task_directory(fn: Callable, args: tuple, kwargs: dict,
                          files: Sequence[DataFile]) -> Any:
    """Run ``fn(*args, **kwargs)`` with a fresh directory holding ``files``
    as the current directory; the directory is removed afterwards."""
    previous = os.getcwd()
    directory = tempfile.mkdtemp(prefix="boinc_pymw-task-")
    try:
        for f in files:
            target = os.path.join(directory, f.name)
            if f.content is not None:
                with open(target, "wb") as fh:
                    fh.write(f.content)
            else:
                shutil.copyfile(f.path, target)
        os.chdir(directory)
        try:
            return fn(*args, **kwargs)
        finally:
            os.chdir(previous)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
