"""Shared pytest fixtures.

BOINC server fixtures (real MariaDB at 127.0.0.1:3306 as root, see
scripts/setup.sh):

* ``mariadb`` (session): checks the server answers; fails with a clear
  message otherwise.
* ``boinc_project`` (function): a fresh throw-away project directory under
  tmp_path with its own database (unique name), dropped afterwards. It is a
  :class:`boinc_pymw.boinc.testing.ThrowawayProject`; use
  ``boinc_pymw.boinc.testing.add_app/add_user/add_host/...`` to fill it.
* ``make_boinc_project`` (function): a factory ``make(**config)`` for tests
  that need several projects or non-default config; all dropped afterwards.
"""

from __future__ import annotations

import os

import pytest

from boinc_pymw.boinc.testing import unique_db_name  # noqa: F401  (re-exported for tests)


@pytest.fixture(scope="session")
def mariadb():
    from boinc_pymw.boinc.db import Database, DatabaseError

    server = Database("information_schema", host="127.0.0.1", user="root", passwd="",
                      connect_timeout=5)
    try:
        server.query("SELECT 1")
        _drop_orphaned_test_databases(server)
    except DatabaseError as exc:
        pytest.fail(f"MariaDB at 127.0.0.1:3306 is needed (run scripts/setup.sh): {exc}")
    finally:
        server.close()
    return ("127.0.0.1", 3306)


def _drop_orphaned_test_databases(server) -> None:
    """Drop pymw_test_<pid>_<n> databases left by test processes that were killed."""
    for row in server.query("SHOW DATABASES LIKE %s", ("pymw\\_test\\_%",)):
        name = next(iter(row.values()))
        parts = name.split("_")
        if len(parts) != 4 or not parts[2].isdigit():
            continue
        try:
            os.kill(int(parts[2]), 0)
        except ProcessLookupError:
            server.execute(f"DROP DATABASE IF EXISTS `{name}`")
        except PermissionError:
            pass


@pytest.fixture
def make_boinc_project(mariadb, tmp_path):
    from boinc_pymw.boinc.testing import make_project

    made = []

    def make(name: str = "proj", **config):
        project = make_project(tmp_path / name, unique_db_name(), **config)
        made.append(project)
        return project

    yield make
    for project in made:
        project.drop()


@pytest.fixture
def boinc_project(make_boinc_project):
    return make_boinc_project()
