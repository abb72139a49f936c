"""Daemons as bin/start runs them: real processes, cwd tmp_<host>, output to log_<host>/,
stopped by the stop_daemons file or a signal only between two workunits."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest

from boinc_pymw.local.simulate import bulk_ready_workunits
from boinc_pymw.boinc.testing import short_hostname

SLOW_ASSIMILATOR = '''#!{python}
"""Test assimilator: announces each workunit, then waits for a go file."""
import os, sys, time
from boinc_pymw.boinc import Assimilator

class Gate(Assimilator):
    def assimilate(self, wu, results, canonical):
        marks = os.environ["MARKS"]
        with open(marks, "a") as f:
            f.write("start %s\\n" % wu["name"])
        while not os.path.exists(os.environ["GO"]):
            time.sleep(0.05)
        with open(marks, "a") as f:
            f.write("end %s\\n" % wu["name"])

sys.exit(Gate.main())
'''


def start_like_bin_start(project, script, args, env_extra):
    """What sched/start does: cwd tmp_<host>, bin/ on PATH, output appended to log_<host>/."""
    host = short_hostname()
    cwd = os.path.join(project.path, f"tmp_{host}")
    log_path = os.path.join(project.path, f"log_{host}", f"{os.path.basename(script)}.log")
    env = dict(os.environ, **env_extra)
    env.pop("BOINC_PROJECT_DIR", None)
    env["PATH"] = os.path.join(project.path, "bin") + os.pathsep + env.get("PATH", "")
    log = open(log_path, "a")
    proc = subprocess.Popen([os.path.basename(script), *args], cwd=cwd, env=env, stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    log.close()
    return proc, log_path


@pytest.fixture
def gate(world, tmp_path):
    script = os.path.join(world.project.path, "bin", "gate_assimilator.py")
    with open(script, "w") as f:
        f.write(SLOW_ASSIMILATOR.format(python=sys.executable))
    os.chmod(script, 0o755)
    bulk_ready_workunits(world.project, world.app_id, 3, quorum=1, host_ids=world.hosts,
                         for_assimilation=True)
    return script, str(tmp_path / "marks"), str(tmp_path / "go")


def wait_for(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    raise AssertionError("condition not reached")


def marks(path):
    return open(path).read().split("\n")[:-1] if os.path.exists(path) else []


@pytest.mark.parametrize("stopper", ["stop_daemons", "SIGHUP", "SIGTERM"])
def test_stop_finishes_current_workunit_then_exits(world, gate, stopper):
    script, marks_path, go = gate
    proc, log_path = start_like_bin_start(
        world.project, script, ["-app", "testapp", "--sleep_interval", "3600", "-d", "3"],
        {"MARKS": marks_path, "GO": go})
    try:
        wait_for(lambda: marks(marks_path) == ["start bulk_0"])
        if stopper == "stop_daemons":
            with open(os.path.join(world.project.path, "stop_daemons"), "w") as f:
                f.write("<stop/>\n")
        else:
            proc.send_signal(getattr(signal, stopper))
        open(go, "w").close()
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert marks(marks_path) == ["start bulk_0", "end bulk_0"]
    states = {r["name"]: r["assimilate_state"]
              for r in world.db.query("SELECT name, assimilate_state FROM workunit")}
    assert states == {"bulk_0": 2, "bulk_1": 1, "bulk_2": 1}
    log = open(log_path).read()
    assert re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{4} \[PID=\d+ *\] Starting assimilator",
                     log, re.M), log
    assert "[debug] found 3 workunits to assimilate" in log     # -d 3
    assert "Stop requested" in log


def test_signal_while_sleeping_exits_without_waiting_the_interval(world, gate):
    script, marks_path, go = gate
    open(go, "w").close()
    proc, log_path = start_like_bin_start(
        world.project, script, ["--app", "testapp", "--sleep_interval", "3600"],
        {"MARKS": marks_path, "GO": go})
    try:
        wait_for(lambda: len(marks(marks_path)) == 6)    # all three done, now sleeping 1 h
        wait_for(lambda: "assimilating WU" in open(log_path).read())
        proc.send_signal(signal.SIGHUP)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert world.db.query_one("SELECT count(*) n FROM workunit WHERE assimilate_state=2")["n"] == 3
    assert "[debug]" not in open(log_path).read()     # default level 2


def test_stop_daemons_present_at_start_means_no_work(world, gate):
    script, marks_path, go = gate
    open(os.path.join(world.project.path, "stop_daemons"), "w").close()
    proc, _ = start_like_bin_start(world.project, script, ["--app", "testapp"],
                                   {"MARKS": marks_path, "GO": go})
    assert proc.wait(timeout=30) == 0
    assert marks(marks_path) == []


def test_bad_options_and_unknown_app(world, gate):
    script, marks_path, go = gate
    env = {"MARKS": marks_path, "GO": go}
    proc, log_path = start_like_bin_start(world.project, script, ["--app", "nosuchapp"], env)
    assert proc.wait(timeout=30) == 1
    assert "can't find app nosuchapp" in open(log_path).read()
    proc, log_path = start_like_bin_start(world.project, script, ["--frobnicate"], env)
    assert proc.wait(timeout=30) == 2
