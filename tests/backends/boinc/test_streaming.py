"""-i boinc at scale, on a simulated server (tests/backends/boinc/sim_server.py):
streaming map under a high-water mark, polls that cost what finished,
batch completion, results surviving BOINC's db_purge, reattach."""

import json
import threading
import time

import pytest

from boinc_pymw import Master
from boinc_pymw.backends.boinc.server import BATCH_STATE_COMPLETE
from boinc_pymw.boinc.states import FileDeleteState, WuError
from boinc_pymw.cli import main

from . import tasks
from .sim_server import SimulatedServer


@pytest.fixture
def sim(boinc_project):
    import types

    from boinc_pymw.boinc.testing import add_app
    from boinc_pymw.templates import write_app_templates

    p = boinc_project
    app_id = add_app(p, "simapp")
    write_app_templates(p, "simapp", inputs=["input.json"], outputs=["output.json"])
    return types.SimpleNamespace(project=p, app_id=app_id,
                                 server=SimulatedServer(p, "simapp", app_id))


def sim_master(sim, batch, **options):
    options.setdefault("poll_interval", 0.05)
    return Master(interface="boinc", project=sim.project.path, app="simapp", batch=batch,
                  **options)


def count_wus(sim, batch=None):
    if batch is None:
        return sim.project.db.query_one("SELECT COUNT(*) AS n FROM workunit")["n"]
    return sim.project.db.query_one("SELECT COUNT(*) AS n FROM workunit w JOIN batch b "
                                    "ON b.id=w.batch WHERE b.name=%s", (batch,))["n"]


def wait_for(predicate, seconds=30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def purge(project):
    """What BOINC's file_deleter then db_purge do to finished work (sched/db_purge.cpp):
    inputs deleted, file_delete_state=DONE, then the workunits whose files are
    deleted and all their results are removed from the database."""
    import os

    db = project.db
    for wu in db.query("SELECT id, name FROM workunit WHERE assimilate_state=2"):
        path = project.download_path(f"{wu['name']}.json")
        if os.path.exists(path):
            os.unlink(path)
        db.execute("UPDATE workunit SET file_delete_state=%s WHERE id=%s",
                   (int(FileDeleteState.DONE), wu["id"]))
    done = [r["id"] for r in db.query("SELECT id FROM workunit WHERE file_delete_state=%s",
                                      (int(FileDeleteState.DONE),))]
    for wu_id in done:
        db.execute("DELETE FROM result WHERE workunitid=%s", (wu_id,))
        db.execute("DELETE FROM workunit WHERE id=%s", (wu_id,))
    return len(done)


def test_map_creates_work_under_the_high_water_mark(sim):
    with sim_master(sim, "hw", high_water=5) as master:
        results = master.map(tasks.square, range(23))
        assert wait_for(lambda: count_wus(sim) == 5)
        time.sleep(0.3)                                   # several polls: still 5
        assert count_wus(sim) == 5
        done = []
        feeder = threading.Thread(target=lambda: done.extend(results))
        feeder.start()
        while feeder.is_alive():
            sim.server.finish(3)
            assert count_wus(sim) - sim.server.finished <= 5    # never more unsent
            time.sleep(0.05)
        feeder.join()
        assert done == [x * x for x in range(23)]
    assert count_wus(sim) == 23


def test_map_raises_at_the_failing_call_and_closing_cancels_the_rest(sim):
    master = sim_master(sim, "closing", high_water=100)
    results = master.map(tasks.raises_if_odd, range(10))
    assert wait_for(lambda: count_wus(sim) == 10)
    sim.server.finish(3)                      # 0, 1 (raises), 2
    assert next(results) == 0
    with pytest.raises(ValueError, match="odd 1"):
        next(results)
    # the iterator is finished: the calls still out are cancelled, as Executor.map does
    db = sim.project.db
    assert wait_for(lambda: db.query_one(
        "SELECT COUNT(*) AS n FROM workunit WHERE error_mask & %s",
        (int(WuError.CANCELLED),))["n"] == 7)
    master.shutdown()


def test_a_poll_reads_only_what_finished(sim):
    from boinc_pymw.boinc.db import Database

    class Counting(Database):
        """Counts the rows read and the values sent: a poll's work in the database."""
        rows = 0
        values = 0

        def query(self, sql, params=None):
            out = super().query(sql, params)
            Counting.rows += len(out)
            Counting.values += len(params or ())
            return out

    master = sim_master(sim, "poll", poll_interval=3600)
    backend = master.backend
    results = master.map(tasks.square, range(3000))
    assert wait_for(lambda: count_wus(sim) == 3000)
    assert wait_for(lambda: not any(t.is_alive() for _s, t in backend._streams))
    time.sleep(0.3)               # the collector thread sleeps for an hour from here on
    db = Counting.from_config(sim.project.config)
    try:
        # 3000 pending, nothing finished: no rows, and not 3000 ids sent either
        assert backend.collect_once(db) == 0
        assert Counting.rows == 0 and Counting.values < 20
        sim.server.finish(10)
        Counting.values = 0
        assert backend.collect_once(db) == 10
        assert Counting.rows <= 10 + 10 and Counting.values < 20 + 10
        assert [next(results) for _ in range(10)] == [x * x for x in range(10)]
        Counting.rows = Counting.values = 0
        assert backend.collect_once(db) == 0                 # nothing new: nothing read
        assert Counting.rows == 0 and Counting.values < 20
    finally:
        db.close()
        results.close()
        master.shutdown()


def test_batch_completes_and_purged_results_stay(sim, capsys):
    calls = [2, "x", 3]
    with sim_master(sim, "purged") as master:
        results = master.map(tasks.square_or_raise, calls)
        assert wait_for(lambda: count_wus(sim) == 3)
        sim.server.finish_all()
        assert next(results) == 4
        with pytest.raises(ValueError, match="not a number"):
            next(results)
    db = sim.project.db
    batch = db.query_one("SELECT * FROM batch WHERE name='purged'")
    assert batch["state"] == BATCH_STATE_COMPLETE and batch["completion_time"] > 0
    assert batch["nerror_jobs"] == 0          # a task that raised is a result, not a BOINC error

    assert purge(sim.project) == 3 and count_wus(sim) == 0
    capsys.readouterr()
    assert main(["status", "-p", sim.project.path, "--batch", "purged"]) == 0
    row = capsys.readouterr().out.splitlines()[1].split()
    assert row[0] == "purged" and row[4] == "complete"
    assert row[-5:] == ["3", "3", "0", "0", "100%"]
    assert main(["results", "-p", sim.project.path, "--batch", "purged"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["index"] for x in lines] == [0, 1, 2]
    assert lines[0]["value"] == 4 and lines[2]["value"] == 9
    assert lines[1]["error"]["type"] == "ValueError"

    # reattaching runs nothing again: every call comes from the store
    with sim_master(sim, "purged") as master:
        results = master.map(tasks.square_or_raise, calls)
        assert next(results) == 4
        with pytest.raises(ValueError):
            next(results)
    assert count_wus(sim) == 0 and sim.server.finish(10) == 0


def test_a_small_worker_output_is_held_in_its_record(sim):
    """One file per call in the results store: no folder, no copy of output.json
    (a large output is still copied as a file, and both read back)."""
    import os

    from boinc_pymw.daemons.result_store import INLINE_MAX_BYTES

    big = INLINE_MAX_BYTES + 10
    with sim_master(sim, "inline") as master:
        small = master.submit(tasks.square, 12)
        large = master.submit(tasks.add, "a" * big, "")
        assert wait_for(lambda: count_wus(sim) == 2)
        sim.server.finish_all()
        assert small.result(timeout=10) == 144
        assert large.result(timeout=10) == "a" * big
    group = os.path.join(sim.project.path, "results_store", f"batch_{master.backend.batch_id}")
    assert sorted(os.listdir(group)) == ["inline_0.json", "inline_1", "inline_1.json"]
    with open(os.path.join(group, "inline_0.json"), encoding="utf-8") as f:
        [entry] = json.load(f)["outputs"]
    assert entry["file"] is None and json.loads(entry["inline"]) == {"ok": True, "value": 144}
    assert os.listdir(os.path.join(group, "inline_1")) == ["output.json"]


def test_reattach_refuses_other_input_by_the_workunit_md5(sim):
    with sim_master(sim, "same") as master:
        first = master.submit(tasks.square, 2)
        assert wait_for(lambda: count_wus(sim) == 1)
        sim.server.finish_all()
        assert first.result(timeout=10) == 4
    import os

    os.unlink(sim.project.download_path("same_0.json"))     # the file_deleter's work
    with sim_master(sim, "same") as master:
        with pytest.raises(Exception, match="differs from the workunit same_0"):
            master.submit(tasks.square, 3)
    with sim_master(sim, "same") as master:
        assert master.submit(tasks.square, 2).result(timeout=10) == 4  # same input: reused
    assert count_wus(sim) == 1


def test_polls_start_every_interval_however_long_one_takes(sim):
    """A slow poll does not push the next one back: the wait after it is shortened,
    so a call assimilated just after a poll's query is seen one interval later."""
    master = sim_master(sim, "cadence", poll_interval=2.0)
    backend = master.backend
    waits = []

    class Recording(threading.Event):
        def wait(self, timeout=None):
            waits.append(timeout)
            return super().wait(min(timeout, 0.05))

    def slow_poll(db):
        time.sleep(0.3)
        return 0

    old_wake = backend._wake
    backend.collect_once = slow_poll
    backend._wake = Recording()
    old_wake.set()
    try:
        assert wait_for(lambda: len(waits) >= 3)
    finally:
        master.shutdown()
    assert max(waits[:3]) <= 2.0 - 0.3 + 1e-6, waits
