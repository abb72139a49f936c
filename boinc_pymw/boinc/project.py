"""A BOINC project directory: where it is, its config, its database, its files.

``Project()`` finds the project the way BOINC's daemons do
(SCHED_CONFIG::project_path): ``$BOINC_PROJECT_DIR``, then ``.``, then
``..``; a directory qualifies only if it holds ``config.xml`` and ``cgi-bin/``.
Everything else hangs off it: ``project.config`` (a
:class:`~boinc_pymw.boinc.config.ProjectConfig`), ``project.db`` (a
:class:`~boinc_pymw.boinc.db.Database`, opened on first use), the
download/upload hierarchy paths and URLs, and create-work.
"""

from __future__ import annotations

import os
from typing import Optional

from .config import ConfigError, ProjectConfig
from .db import Database
from .hierarchy import dir_hier_path, dir_hier_url


def is_project_dir(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "config.xml")) and os.path.isdir(
        os.path.join(path, "cgi-bin"))


def find_project_dir(path: Optional[str] = None) -> str:
    """The project directory: ``path`` if given, else BOINC's search order."""
    if path is not None:
        path = os.path.abspath(path)
        if not os.path.isfile(os.path.join(path, "config.xml")):
            raise ConfigError(f"{os.path.join(path, 'config.xml')}: no such file "
                              f"({path} is not a BOINC project directory)")
        return path
    candidates = []
    env = os.environ.get("BOINC_PROJECT_DIR")
    if env:
        candidates.append(env)
    candidates += [".", ".."]
    for candidate in candidates:
        if is_project_dir(candidate):
            return os.path.abspath(candidate)
    raise ConfigError(
        "no BOINC project found: looked in "
        + ", ".join(os.path.abspath(c) for c in candidates)
        + " for a directory with config.xml and cgi-bin/ (set $BOINC_PROJECT_DIR)")


#: The file BOINC's make_project and upgrade write: the schema revision the
#: database has (html/ops/db_update.php).
DB_REVISION_FILE = "db_revision"
#: The last revision of server releases 1.0 to 1.4 (1.4.7 included); 1.6 adds 27029 on.
LAST_1_4_DB_REVISION = 27028


class Project:
    """One BOINC project (directory + config.xml + database)."""

    def __init__(self, path: Optional[str] = None):
        self.path = find_project_dir(path)
        self.config = ProjectConfig.read(os.path.join(self.path, "config.xml"))
        self._db: Optional[Database] = None

    def __repr__(self):
        return f"Project({self.path!r})"

    # -- which server release -----------------------------------------------------------
    @property
    def db_revision(self) -> Optional[int]:
        """The number in the project's ``db_revision`` file (None without one)."""
        path = os.path.join(self.path, DB_REVISION_FILE)
        try:
            with open(path, encoding="ascii") as f:
                text = f.read().strip()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read {path}: {exc}") from None
        if not text.isdigit():
            raise ConfigError(f"{path} holds {text[:40]!r}, not a schema revision number")
        return int(text)

    @property
    def server_release(self) -> str:
        """"1.4" (db_revision up to 27028: releases 1.0-1.4) or "1.6" (later, or
        no db_revision file); decides create_work's defaults."""
        revision = self.db_revision
        return "1.4" if revision is not None and revision <= LAST_1_4_DB_REVISION else "1.6"

    # -- database ---------------------------------------------------------------------
    @property
    def db(self) -> Database:
        """The project database, connected on first use."""
        if self._db is None:
            self._db = Database.from_config(self.config)
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()

    def __enter__(self) -> "Project":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- directories and file locations ---------------------------------------------------
    @property
    def download_dir(self) -> str:
        return self.config.download_dir

    @property
    def upload_dir(self) -> str:
        return self.config.upload_dir

    @property
    def key_dir(self) -> str:
        return self.config.key_dir

    @property
    def templates_dir(self) -> str:
        return os.path.join(self.path, "templates")

    @property
    def fanout(self) -> int:
        return self.config.uldl_dir_fanout

    def download_path(self, name: str, *, create: bool = False) -> str:
        """Where input file ``name`` lives in the download hierarchy."""
        return dir_hier_path(name, self.download_dir, self.fanout, create=create)

    def download_url(self, name: str) -> str:
        return dir_hier_url(name, self.config.download_url, self.fanout)

    def upload_path(self, name: str, *, create: bool = False) -> str:
        """Where output file ``name`` arrives in the upload hierarchy."""
        return dir_hier_path(name, self.upload_dir, self.fanout, create=create)

    # -- lookups ----------------------------------------------------------------------------
    def app(self, name: str) -> dict:
        """The app row called ``name``; a clear error if there is none."""
        row = self.db.query_one("SELECT * FROM app WHERE name=%s", (name,))
        if row is None:
            from ..errors import BoincPymwError

            raise BoincPymwError(f"no application named {name!r} in database "
                                 f"{self.config.db_name!r} (add it first)")
        return row

    # -- create-work --------------------------------------------------------------------------
    def create_work(self, app, files, input_template=None, result_template=None, name=None,
                    batch=None, **wu_fields):
        """Create one workunit; see :mod:`boinc_pymw.boinc.create_work`."""
        from .create_work import create_work

        return create_work(self, app, files, input_template, result_template,
                           name=name, batch=batch, **wu_fields)

    def create_batch(self, jobs, **options):
        """Create many workunits at once; see :mod:`boinc_pymw.boinc.create_work`."""
        from .create_work import create_batch

        return create_batch(self, jobs, **options)
