"""A Master killed mid-batch and restarted with the same batch name loses
nothing and submits nothing twice (-i boinc and -i boinc-local)."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from boinc_pymw import Master

from . import tasks

TESTS = Path(__file__).resolve().parents[2]


def start_master(options: dict, calls: list) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(TESTS))
    return subprocess.Popen([sys.executable, str(Path(__file__).with_name("kill_me.py")),
                             json.dumps(options), json.dumps(calls)],
                            env=env, stdout=subprocess.PIPE, text=True)


def read_lines(proc, n) -> list:
    lines = [proc.stdout.readline().strip() for _ in range(n)]
    assert all(lines), f"the master ended early: {lines}"
    return lines


def executions(log: Path) -> dict:
    counts = {}
    for name in os.listdir(log):
        x = int(name.split(".")[0])
        counts[x] = counts.get(x, 0) + 1
    return counts


def test_boinc_master_killed_and_restarted(boinc_world, tmp_path):
    w = boinc_world
    db = w.project.db
    log = tmp_path / "log"
    log.mkdir()
    options = dict(interface="boinc", project=w.project.path, app="pymwapp", batch="killed",
                   poll_interval=0.1)
    calls = [[str(log), x] for x in range(4)]
    proc = start_master(options, calls)
    try:
        for _ in range(300):
            if db.query_one("SELECT COUNT(*) AS n FROM workunit")["n"] == 4:
                break
            time.sleep(0.1)
        w.volunteers.step(limit=2)           # two workunits computed and assimilated
        assert read_lines(proc, 2) == ["0", "1"]
    finally:
        proc.kill()
        proc.wait()
    with Master(**options) as master:
        futures = [master.submit(tasks.logged_square, *call) for call in calls]
        # finished results come back with no more BOINC work
        assert [f.result(timeout=30) for f in futures[:2]] == [0, 1]
        assert not futures[2].done()
        w.volunteers.run_until_done()
        assert [f.result(timeout=60) for f in futures] == [0, 1, 4, 9]
    names = [r["name"] for r in db.query("SELECT name FROM workunit ORDER BY id")]
    assert names == [f"killed_{i}" for i in range(4)]          # nothing submitted twice
    assert executions(log) == {0: 2, 1: 2, 2: 2, 3: 2}           # quorum 2, once each


def test_local_master_killed_and_restarted(tmp_path, local_cache):
    log = tmp_path / "log"
    log.mkdir()
    options = dict(interface="boinc-local", workers=1, quorum=1, batch="lk",
                   workdir=str(tmp_path / "work"), cache_dir=str(local_cache))
    calls = [[str(log), x, 0.5] for x in range(5)]
    proc = start_master(options, calls)
    try:
        assert read_lines(proc, 2) == ["0", "1"]
    finally:
        proc.kill()
        proc.wait()
    done_before = executions(log)
    assert done_before[0] == 1 and done_before[1] == 1
    with Master(**options) as master:
        assert list(master.map(tasks.logged_square, *zip(*calls))) == [0, 1, 4, 9, 16]
    after = executions(log)
    # the two finished calls did not run again; the rest ran (the one killed
    # mid-run may have run twice, as BOINC would re-issue it)
    assert after[0] == 1 and after[1] == 1
    assert set(after) == {0, 1, 2, 3, 4}
    inputs = sorted(p.name for p in (tmp_path / "work" / "download").iterdir())
    assert inputs == [f"lk_{i}.json" for i in range(5)]
