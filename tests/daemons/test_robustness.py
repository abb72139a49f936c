"""Several daemons at once, daemons killed with -9, and the database going away:
no workunit is handled twice by a --mod split, none is lost or left stuck, and
credit is never granted twice (each workunit's writes are one transaction)."""

from __future__ import annotations

import os
import random
import signal
import time

import pytest

from boinc_pymw.local.simulate import bulk_ready_workunits

from .conftest import read_marks, start_daemon_process


def counts(db, sql):
    return db.query_one(sql)["n"]


def assert_credit_consistent(db):
    """Every host's and user's total equals the credit granted to its results: no double grants."""
    for host in db.query("SELECT h.id, h.total_credit, COALESCE(SUM(r.granted_credit), 0) AS g "
                         "FROM host h LEFT JOIN result r ON r.hostid=h.id GROUP BY h.id"):
        assert host["total_credit"] == pytest.approx(host["g"]), host
    for user in db.query("SELECT u.id, u.total_credit, COALESCE(SUM(r.granted_credit), 0) AS g "
                         "FROM user u LEFT JOIN result r ON r.userid=u.id GROUP BY u.id"):
        assert user["total_credit"] == pytest.approx(user["g"]), user


def test_mod_split_between_two_processes_handles_each_workunit_once(world, tmp_path):
    db, project = world.db, world.project
    wu_ids = bulk_ready_workunits(project, world.app_id, 300, quorum=2, host_ids=world.hosts,
                                  prefix="val")
    marks = tmp_path / "val_marks"
    procs = [start_daemon_process(project, "validator", ["--mod", "2", str(r), "--one_pass"],
                                  marks) for r in (0, 1)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    handled = read_marks(marks)
    assert len(handled) == 600                              # every result initialised ...
    assert all(len(pids) == 1 for pids in handled.values())  # ... exactly once
    by_pid = {}
    for name, (pid,) in handled.items():
        by_pid.setdefault(pid, set()).add(name)
    assert sorted(by_pid) == sorted(p.pid for p in procs)
    assert counts(db, "SELECT count(*) n FROM workunit WHERE need_validate=0 AND "
                      "canonical_resultid>0 AND assimilate_state=1") == 300
    assert_credit_consistent(db)

    marks = tmp_path / "asm_marks"
    procs = [start_daemon_process(project, "assimilator", ["-mod", "2", str(r), "-one_pass"],
                                  marks) for r in (0, 1)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    handled = read_marks(marks)
    assert sorted(handled) == sorted(f"val_{i}" for i in range(300))
    assert all(len(pids) == 1 for pids in handled.values())
    for pid_index, proc in enumerate(procs):
        mine = {int(name.split("_")[1]) for name, (pid,) in handled.items() if pid == proc.pid}
        assert {wu_ids[i] % 2 for i in mine} == {pid_index}
    assert counts(db, "SELECT count(*) n FROM workunit WHERE assimilate_state=2") == 300


def marks_count(path):
    return sum(1 for _ in open(path)) if os.path.exists(path) else 0


def kill_repeatedly(project, kind, marks, db, done_sql, total, rng, n_kills=8):
    """SIGKILL the daemon at random points of its work ``n_kills`` times, then let it finish."""
    kills = 0
    for _ in range(n_kills):
        proc = start_daemon_process(project, kind, ["--one_pass"], marks)
        target = marks_count(marks) + rng.randint(1, 150)
        deadline = time.monotonic() + 60
        while proc.poll() is None and marks_count(marks) < target and time.monotonic() < deadline:
            time.sleep(0.001)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    for _ in range(10):
        proc = start_daemon_process(project, kind, ["--one_pass"], marks)
        assert proc.wait(timeout=300) == 0
        if counts(db, done_sql) == total:
            return kills
    raise AssertionError("the daemon never finished")


def test_assimilator_killed_9_at_random_points(world, tmp_path):
    db, project = world.db, world.project
    n = 2000
    bulk_ready_workunits(project, world.app_id, n, quorum=1, host_ids=world.hosts,
                         for_assimilation=True, prefix="k")
    marks = tmp_path / "marks"
    kills = kill_repeatedly(project, "assimilator", marks, db,
                            "SELECT count(*) n FROM workunit WHERE assimilate_state=2", n,
                            random.Random(20261125))
    assert kills >= 1
    handled = read_marks(marks)
    assert sorted(handled) == sorted(f"k_{i}" for i in range(n))   # every handler ran
    # a workunit is handled again only if the kill fell between its handler and the
    # UPDATE that marks its group (group commit: up to group_commit workunits a kill)
    from boinc_pymw.boinc.assimilator import Assimilator

    assert sum(len(p) for p in handled.values()) - n <= kills * Assimilator.group_commit
    assert counts(db, "SELECT count(*) n FROM workunit WHERE assimilate_state<>2") == 0


def test_validator_killed_9_never_grants_twice(world, tmp_path):
    db, project = world.db, world.project
    n = 600
    bulk_ready_workunits(project, world.app_id, n, quorum=2, host_ids=world.hosts, prefix="kv")
    kills = kill_repeatedly(project, "validator", tmp_path / "marks", db,
                            "SELECT count(*) n FROM workunit WHERE need_validate=0", n,
                            random.Random(7))
    assert kills >= 1
    assert counts(db, "SELECT count(*) n FROM result WHERE validate_state<>1") == 0
    assert counts(db, "SELECT count(*) n FROM workunit WHERE canonical_resultid=0") == 0
    assert_credit_consistent(db)


def test_validator_and_assimilator_running_together(world, tmp_path):
    """The pipeline as a project runs it: both daemons live, workunits flowing through."""
    db, project = world.db, world.project
    n = 400
    bulk_ready_workunits(project, world.app_id, n, quorum=2, host_ids=world.hosts, prefix="p")
    procs = [start_daemon_process(project, kind, ["--sleep_interval", "1"], tmp_path / kind)
             for kind in ("validator", "assimilator")]
    try:
        deadline = time.monotonic() + 180
        while counts(db, "SELECT count(*) n FROM workunit WHERE assimilate_state=2") < n:
            assert time.monotonic() < deadline, "pipeline did not finish"
            assert all(p.poll() is None for p in procs)
            time.sleep(0.2)
        with open(os.path.join(project.path, "stop_daemons"), "w") as f:
            f.write("<stop/>\n")
        assert [p.wait(timeout=60) for p in procs] == [0, 0]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert sorted(read_marks(tmp_path / "assimilator")) == sorted(f"p_{i}" for i in range(n))
    assert all(len(v) == 1 for v in read_marks(tmp_path / "assimilator").values())
    assert counts(db, "SELECT count(*) n FROM workunit WHERE need_validate<>0 OR "
                      "canonical_resultid=0") == 0
    assert_credit_consistent(db)
