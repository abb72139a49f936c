"""Fixtures for the daemon tests: a project with an app, hosts, users, a team."""

from __future__ import annotations

import types

import pytest

from boinc_pymw.local.simulate import add_app_version
from boinc_pymw.boinc.testing import add_app, add_host, add_platform, add_team, add_user


@pytest.fixture
def world(boinc_project):
    """A project with app "testapp", one app version, a team and 4 users with a host each."""
    return make_world(boinc_project)


def make_world(p):
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


# -- daemons as separate processes ----------------------------------------------------------
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

RECORDING_DAEMONS = '''#!{python}
"""Test daemons that record each workunit they handle (one line per call, O_APPEND)."""
import os, sys, time
from boinc_pymw.boinc import Assimilator
from boinc_pymw.daemons.bitwise_validator import BitwiseValidator

def mark(text):
    fd = os.open(os.environ["MARKS"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(fd, ("%s %d\\n" % (text, os.getpid())).encode())
    os.close(fd)

DELAY = float(os.environ.get("HANDLER_DELAY", "0"))

class RecordingAssimilator(Assimilator):
    db_retry_seconds = float(os.environ.get("DB_RETRY", "60"))

    def assimilate(self, wu, results, canonical):
        if DELAY:
            time.sleep(DELAY)
        mark(wu["name"])

class RecordingValidator(BitwiseValidator):
    db_retry_seconds = float(os.environ.get("DB_RETRY", "60"))

    def init_result(self, result):
        if DELAY:
            time.sleep(DELAY)
        mark(result["name"])
        return super().init_result(result)

cls = RecordingValidator if sys.argv.pop(1) == "validator" else RecordingAssimilator
sys.exit(cls.main())
'''


def install_recording_daemons(project) -> str:
    path = os.path.join(project.path, "bin", "recording_daemons.py")
    with open(path, "w") as f:
        f.write(RECORDING_DAEMONS.format(python=sys.executable))
    os.chmod(path, 0o755)
    return path


def start_daemon_process(project, kind, args, marks, **env_extra):
    """Start bin/recording_daemons.py KIND as bin/start would (cwd tmp_<host>, log_<host>/)."""
    from boinc_pymw.boinc.testing import short_hostname

    script = install_recording_daemons(project)
    host = short_hostname()
    env = dict(os.environ, MARKS=str(marks), **{k: str(v) for k, v in env_extra.items()})
    env.pop("BOINC_PROJECT_DIR", None)
    log = open(os.path.join(project.path, f"log_{host}", f"{kind}.log"), "a")
    try:
        return subprocess.Popen([script, kind, "--app", "testapp", *args],
                                cwd=os.path.join(project.path, f"tmp_{host}"), env=env,
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    finally:
        log.close()


def read_marks(path):
    """{name: [pid, ...]} from a marks file."""
    handled = {}
    if os.path.exists(path):
        for line in open(path).read().splitlines():
            name, pid = line.split()
            handled.setdefault(name, []).append(int(pid))
    return handled
