"""-i boinc against a test database: BOINC's server and clients played by
tests/backends/boinc/volunteers.py, every result really computed in a slot."""

import threading
from pathlib import Path

import pytest

from boinc_pymw import Master
from boinc_pymw.backends.boinc import WorkunitFailed
from boinc_pymw.boinc.states import Outcome, ServerState, WuError

from . import tasks


def boinc_master(world, batch, **options):
    return Master(interface="boinc", project=world.project.path, app="pymwapp", batch=batch,
                  poll_interval=0.1, **options)


def test_every_result_comes_back(boinc_world):
    w = boinc_world
    master = boinc_master(w, "every")
    futures = [master.submit(tasks.square, x) for x in range(4)]
    futures.append(master.submit(tasks.add, 2, b=40))
    w.volunteers.run_until_done()
    assert [f.result(timeout=60) for f in futures] == [0, 1, 4, 9, 42]
    master.shutdown()
    rows = w.project.db.query("SELECT w.name, w.min_quorum, b.name AS batch FROM workunit w "
                              "JOIN batch b ON b.id = w.batch ORDER BY w.id")
    assert [r["name"] for r in rows] == [f"every_{i}" for i in range(5)]
    assert {r["batch"] for r in rows} == {"every"} and {r["min_quorum"] for r in rows} == {2}
    # quorum 2: every workunit was computed by two volunteers
    assert len(w.volunteers.computed) == 10


def test_map_in_call_order(boinc_world):
    w = boinc_world
    with boinc_master(w, "mapped") as master:
        results = master.map(tasks.square, [3, 1, 2])    # workunits exist from here on
        w.volunteers.run_until_done()
        assert list(results) == [9, 1, 4]


def test_task_exception_is_raised_with_its_type(boinc_world):
    w = boinc_world
    master = boinc_master(w, "raising")
    future = master.submit(tasks.raises, "no good")
    w.volunteers.run_until_done()
    with pytest.raises(ValueError, match="no good"):
        future.result(timeout=60)
    master.shutdown()


def test_crash_is_a_failed_workunit_with_reason_and_stderr(boinc_world):
    w = boinc_world
    master = boinc_master(w, "crashing")
    future = master.submit(tasks.crashes)
    w.volunteers.run_until_done()
    with pytest.raises(WorkunitFailed) as info:
        future.result(timeout=60)
    err = info.value
    assert err.error_mask & WuError.TOO_MANY_ERROR_RESULTS
    assert "too many results ended in error" in str(err)
    assert "CLIENT_ERROR" in str(err)
    assert "process got signal 11 (SIGSEGV)" in err.stderr   # the client's message
    master.shutdown()


def test_garbage_output_is_a_clear_error(boinc_world):
    w = boinc_world
    master = boinc_master(w, "garbage")
    future = master.submit(tasks.writes_garbage)
    w.volunteers.run_until_done()
    with pytest.raises(WorkunitFailed, match="VALIDATE_ERROR"):
        future.result(timeout=60)
    master.shutdown()


def test_cancel_cancels_the_workunit_as_cancel_jobs(boinc_world):
    w = boinc_world
    master = boinc_master(w, "cancelled")
    keep = master.submit(tasks.square, 5)
    drop = master.submit(tasks.square, 6)
    wus = w.volunteers.open_workunits()
    w.volunteers._transition_all(wus)        # results created, not sent yet
    assert drop.cancel()
    master.shutdown(wait=False)
    db = w.project.db
    for _ in range(100):
        wu = db.query_one("SELECT * FROM workunit WHERE name='cancelled_1'")
        if wu["error_mask"] & WuError.CANCELLED:
            break
        threading.Event().wait(0.1)
    assert wu["error_mask"] & WuError.CANCELLED
    states = {(r["server_state"], r["outcome"]) for r in db.query(
        "SELECT server_state, outcome FROM result WHERE workunitid=%s", (wu["id"],))}
    assert states == {(ServerState.OVER, Outcome.DIDNT_NEED)}
    other = db.query_one("SELECT error_mask FROM workunit WHERE name='cancelled_0'")
    assert other["error_mask"] == 0
    assert not keep.done()
    keep.cancel()                                # lets the collector thread end


def test_results_store_follows_the_configured_assimilator(boinc_world, tmp_path, caplog):
    from boinc_pymw.cli import main

    w = boinc_world
    master = boinc_master(w, "nostore")
    assert "lists no result-store assimilator for app pymwapp" in caplog.text
    assert master.backend.store.directory == Path(w.project.path) / "results_store"
    master.shutdown(wait=False)
    store = tmp_path / "elsewhere"
    assert main(["daemon", "--project", w.project.path, "add", "result_store_assimilator",
                 "--app", "pymwapp", "--store", str(store)]) == 0
    master = boinc_master(w, "withstore")
    assert master.backend.store.directory == store
    master.shutdown(wait=False)
