"""A dead validator or assimilator is named, with its log, instead of a silent wait:
the Master warns once when its batch stalls; ``boinc_pymw status`` shows each daemon."""

import logging
import os
import subprocess
import sys
import textwrap
import time

import pytest

from boinc_pymw import Master
from boinc_pymw.backends.boinc.daemon_watch import app_daemons
from boinc_pymw.boinc.testing import short_hostname
from boinc_pymw.cli import main

from . import tasks

VALIDATOR = "numeric_validator --app watched"
ASSIMILATOR = "result_store_assimilator --app watched"


@pytest.fixture
def project(make_boinc_project):
    from boinc_pymw.boinc.testing import add_app
    from boinc_pymw.templates import write_app_templates

    p = make_boinc_project(daemons=[VALIDATOR, ASSIMILATOR, "feeder -d 3"])
    add_app(p, "watched")
    write_app_templates(p, "watched", inputs=["input.json"], outputs=["output.json"])
    log_dir = os.path.join(p.path, f"log_{short_hostname()}")
    with open(os.path.join(log_dir, "numeric_validator.log"), "w") as f:
        for n in range(3):     # what bin/start --cron leaves behind a crash loop
            f.write(f"[2026/12/01 10:0{n}:00] Executing command: {VALIDATOR}\n"
                    f"Traceback (most recent call last):\n"
                    f"TypeError: a bytes-like object is required, not 'str'\n")
    return p


def hold_lock(project, name):
    """A stand-in daemon: holds bin/start's lock on pid_<host>/<name> as long as it lives."""
    path = os.path.join(project.path, f"pid_{short_hostname()}", name)
    code = textwrap.dedent(f"""
        import fcntl, sys, time
        f = open({path!r}, "w")
        fcntl.lockf(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        print("locked", flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_daemon_states_follow_bin_starts_locks(project):
    proc = hold_lock(project, "result_store_assimilator.lock")
    try:
        states = {s.program: s for s in app_daemons(project, "watched")}
        assert set(states) == {"numeric_validator", "result_store_assimilator"}  # not the feeder
        assimilator, validator = states["result_store_assimilator"], states["numeric_validator"]
        assert assimilator.running is True and assimilator.pid == proc.pid
        assert validator.running is False and validator.starts == 3
        assert "keeps exiting" in validator.state
        assert validator.last_lines[-1] == "TypeError: a bytes-like object is required, not 'str'"
    finally:
        proc.kill()
        proc.wait()
    assert all(s.running is False for s in app_daemons(project, "watched"))


def test_stalled_master_names_the_dead_daemon_once(project, caplog):
    proc = hold_lock(project, "result_store_assimilator.lock")
    caplog.set_level(logging.WARNING, logger="boinc_pymw.backends.boinc")
    try:
        master = Master(interface="boinc", project=project.path, app="watched", batch="stall",
                        poll_interval=0.05, stall_warning=0.2)
        future = master.submit(tasks.square, 3)
        deadline = time.monotonic() + 20
        while "numeric_validator" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)                                  # more stalled polls
        warnings = [r.getMessage() for r in caplog.records if "no progress" in r.getMessage()]
        assert len(warnings) == 1, warnings              # once, and only the dead one
        assert "numeric_validator" in warnings[0] and "keeps exiting" in warnings[0]
        assert "TypeError: a bytes-like object is required" in warnings[0]
        future.cancel()
        master.shutdown()
    finally:
        proc.kill()
        proc.wait()


def test_status_shows_each_daemon_of_the_app(project, capsys):
    with Master(interface="boinc", project=project.path, app="watched", batch="shown",
                poll_interval=0.05) as master:
        master.submit(tasks.square, 1).cancel()
    capsys.readouterr()
    assert main(["status", "-p", project.path]) == 0
    out = capsys.readouterr().out
    assert "app watched: numeric_validator NOT RUNNING (started 3 times: keeps exiting)" in out
    assert "app watched: result_store_assimilator NOT RUNNING" in out
    assert "    TypeError: a bytes-like object is required, not 'str'" in out
