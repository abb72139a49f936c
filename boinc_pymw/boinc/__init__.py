"""Python bindings for a BOINC project's server side: config, database,
upload/download hierarchy, templates, create-work, signing and daemons.

Start from :class:`Project`::

    from boinc_pymw.boinc import Project
    project = Project()              # $BOINC_PROJECT_DIR, then ., then ..
    project.config.upload_dir        # typed config.xml (ProjectConfig)
    project.db.query("SELECT id, name FROM app")
    project.download_path("in.dat")  # the fan-out hierarchy (dir_hier_path)
"""

from .config import ConfigError, Daemon, ProjectConfig, Task
from .create_work import BatchResult, CreateWorkError, Job
from .db import Database, DatabaseError
from .hierarchy import dir_hier_path, dir_hier_url
from .project import Project, find_project_dir

__all__ = [
    "BatchResult", "ConfigError", "CreateWorkError", "Daemon", "Database", "DatabaseError",
    "Job", "Project", "ProjectConfig", "Task", "dir_hier_path", "dir_hier_url",
    "find_project_dir",
    "Assimilator", "DeferAssimilation", "Validator", "TransientError", "Invalid",
]

# The daemon framework, imported on first use (validator.py, assimilator.py).
_LAZY = {"Assimilator": "assimilator", "DeferAssimilation": "assimilator",
         "Validator": "validator", "TransientError": "validator", "Invalid": "validator"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
