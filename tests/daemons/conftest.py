"""Fixtures for the daemon tests: a project with an app, hosts, users, a team."""

from __future__ import annotations

import types

import pytest

from boinc_pymw.boinc.simulate import add_app_version
from boinc_pymw.boinc.testing import add_app, add_host, add_platform, add_team, add_user


@pytest.fixture
def world(boinc_project):
    """A project with app "testapp", one app version, a team and 3 users with a host each."""
    p = boinc_project
    app_id = add_app(p, "testapp")
    platform_id = add_platform(p)
    av_id = add_app_version(p, app_id, platform_id)
    team_id = add_team(p, "the team")
    users = [add_user(p, f"u{i}@example.org", teamid=team_id if i == 0 else 0) for i in range(4)]
    hosts = [add_host(p, u) for u in users]
    return types.SimpleNamespace(project=p, db=p.db, app_id=app_id, av_id=av_id,
                                 team_id=team_id, users=users, hosts=hosts)


def run_daemon(cls, project, *args):
    """Run one pass of a daemon class in this process; returns its exit code."""
    options = cls.parse_args(["--app", "testapp", "--one_pass", *args])
    return cls(options, project=project).run()
