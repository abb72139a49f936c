"""Fixtures for the BOINC back-end tests: the local runtime cache, a built app version, a project world."""

from pathlib import Path

import pytest

HERE = Path(__file__).parent


@pytest.fixture(scope="session")
def local_cache(tmp_path_factory) -> Path:
    """Build cache (launcher, portable runtime) shared by this session's BOINC tests.

    Laid out as ``$XDG_CACHE_HOME/boinc_pymw/local``, the local mode's default,
    so scripts run with ``XDG_CACHE_HOME`` set to ``xdg_cache_home(local_cache)``
    use it too.
    """
    path = tmp_path_factory.mktemp("xdg") / "boinc_pymw" / "local"
    path.mkdir(parents=True)
    return path


def xdg_cache_home(local_cache: Path) -> str:
    return str(local_cache.parent.parent)


@pytest.fixture(scope="session")
def task_app_version(local_cache):
    """(main program, files): launcher + portable runtime + this directory's task code."""
    from boinc_pymw.backends.boinc._local_app import built_app_version, code_roots_of

    return built_app_version(code_roots_of(["backends.boinc.tasks"]), local_cache)


@pytest.fixture
def boinc_world(boinc_project, task_app_version, tmp_path):
    """A project with app "pymwapp" (quorum 2), hosts, and volunteers to run it."""
    import types

    from boinc_pymw.local.simulate import add_app_version
    from boinc_pymw.boinc.testing import add_app, add_host, add_platform, add_user
    from boinc_pymw.templates import write_app_templates

    from .volunteers import Volunteers

    p = boinc_project
    app_id = add_app(p, "pymwapp")
    add_app_version(p, app_id, add_platform(p))
    hosts = [add_host(p, add_user(p, f"v{i}@example.org")) for i in range(3)]
    write_app_templates(p, "pymwapp", inputs=["input.json"], outputs=["output.json"],
                        min_quorum=2, target_nresults=2, max_error_results=1)
    volunteers = Volunteers(p, "pymwapp", app_id, hosts, task_app_version, tmp_path / "client")
    return types.SimpleNamespace(project=p, app_id=app_id, hosts=hosts, volunteers=volunteers)
