"""The assimilator against real MariaDB: handler outcomes and database states."""

from __future__ import annotations

import json
import os
import time

import pytest

from boinc_pymw.boinc.assimilator import Assimilator, DeferAssimilation
from boinc_pymw.local.simulate import Transitioner, bulk_ready_workunits, run_to_validation
from boinc_pymw.boinc.states import AssimilateState, WuError
from boinc_pymw.daemons.bitwise_validator import BitwiseValidator
from boinc_pymw.daemons.result_store import ResultStoreAssimilator, read_record

from .conftest import run_daemon


def wu_row(db, wu_id):
    return db.query_one("SELECT * FROM workunit WHERE id=%s", (wu_id,))


class Recorder(Assimilator):
    calls: list = []
    behaviour = "ok"

    def assimilate(self, wu, results, canonical):
        type(self).calls.append((wu["name"], wu["error_mask"], canonical and canonical["id"],
                                 len(results)))
        if self.behaviour == "defer":
            raise DeferAssimilation()
        if self.behaviour == "crash":
            raise ZeroDivisionError("handler bug")


@pytest.fixture(autouse=True)
def reset_recorder():
    Recorder.calls = []
    Recorder.behaviour = "ok"


def validated_wu(world, name="wu", outputs=((b"a",), (b"a",))):
    wu_id = run_to_validation(world.project, world.app_id, world.hosts[:len(outputs)],
                              [list(o) for o in outputs], name, min_quorum=len(outputs),
                              app_version_id=world.av_id)
    run_daemon(BitwiseValidator, world.project)
    return wu_id


def test_success_marks_assimilated(world):
    wu_id = validated_wu(world)
    assert run_daemon(Recorder, world.project) == 0
    wu = wu_row(world.db, wu_id)
    assert wu["assimilate_state"] == AssimilateState.DONE
    assert abs(wu["transition_time"] - time.time()) < 5
    assert Recorder.calls == [("wu", 0, wu["canonical_resultid"], 2)]


def test_failed_workunit_gets_no_canonical_and_error_mask(world):
    db = world.db
    # quorum 2 but every result errors: too many errors -> transitioner flags it
    wu_id = run_to_validation(world.project, world.app_id, world.hosts[:2], [None, None],
                              "bad", min_quorum=2, max_error_results=1)
    assert wu_row(db, wu_id)["error_mask"] & WuError.TOO_MANY_ERROR_RESULTS
    assert wu_row(db, wu_id)["assimilate_state"] == AssimilateState.READY
    run_daemon(Recorder, world.project)
    assert Recorder.calls == [("bad", WuError.TOO_MANY_ERROR_RESULTS, None, 2)]
    assert wu_row(db, wu_id)["assimilate_state"] == AssimilateState.DONE


def test_ready_without_canonical_or_error_gets_error_mask_32(world):
    db = world.db
    wu_id = run_to_validation(world.project, world.app_id, world.hosts[:1], [[b"a"]], "odd",
                              min_quorum=1)
    db.execute("UPDATE workunit SET assimilate_state=1, need_validate=0 WHERE id=%s", (wu_id,))
    run_daemon(Recorder, world.project)
    wu = wu_row(db, wu_id)
    assert wu["error_mask"] == WuError.NO_CANONICAL_RESULT
    assert wu["assimilate_state"] == AssimilateState.DONE


def test_cancelled_workunit(world):
    db = world.db
    wu_id = run_to_validation(world.project, world.app_id, [], [], "cancelled", min_quorum=2,
                              target_nresults=2)
    Transitioner(world.project).cancel(wu_id)
    run_daemon(Recorder, world.project)
    assert Recorder.calls == [("cancelled", WuError.CANCELLED, None, 2)]
    wu = wu_row(db, wu_id)
    assert wu["error_mask"] == WuError.CANCELLED and wu["assimilate_state"] == AssimilateState.DONE


def test_defer_puts_workunit_back_to_init(world):
    wu_id = validated_wu(world)
    Recorder.behaviour = "defer"
    run_daemon(Recorder, world.project)
    assert wu_row(world.db, wu_id)["assimilate_state"] == AssimilateState.INIT
    Transitioner(world.project).transition(wu_id)   # all results over and validated
    assert wu_row(world.db, wu_id)["assimilate_state"] == AssimilateState.READY
    Recorder.behaviour = "ok"
    run_daemon(Recorder, world.project)
    assert wu_row(world.db, wu_id)["assimilate_state"] == AssimilateState.DONE
    assert len(Recorder.calls) == 2


def test_handler_exception_exits_nonzero_and_keeps_workunit(world, caplog):
    wu_id = validated_wu(world)
    Recorder.behaviour = "crash"
    assert run_daemon(Recorder, world.project) == 1
    assert wu_row(world.db, wu_id)["assimilate_state"] == AssimilateState.READY
    assert "ZeroDivisionError: handler bug" in caplog.text
    assert "Traceback" in caplog.text


def test_continue_on_error_records_and_goes_on(world, tmp_path, monkeypatch):
    first = validated_wu(world, "first")
    second = validated_wu(world, "second")
    monkeypatch.chdir(tmp_path)

    class CrashOnFirst(Assimilator):
        seen = []

        def assimilate(self, wu, results, canonical):
            self.seen.append(wu["name"])
            if wu["name"] == "first":
                raise RuntimeError("cannot store")

    assert run_daemon(CrashOnFirst, world.project, "--continue_on_error") == 0
    assert sorted(CrashOnFirst.seen) == ["first", "second"]
    assert wu_row(world.db, first)["assimilate_state"] == AssimilateState.READY
    assert wu_row(world.db, second)["assimilate_state"] == AssimilateState.DONE
    path = os.path.join(world.project.path, "quarantine", "testapp.assimilator.jsonl")
    records = [json.loads(line) for line in open(path)]
    assert [(r["event"], r["wu_name"], r["error"]) for r in records] == [
        ("failure", "first", "RuntimeError: cannot store")]
    assert "Traceback" in records[0]["traceback"]


def test_dont_update_db_runs_handler_only(world):
    wu_id = validated_wu(world)
    run_daemon(Recorder, world.project, "--dont_update_db")
    assert len(Recorder.calls) == 1
    assert wu_row(world.db, wu_id)["assimilate_state"] == AssimilateState.READY


def test_mod_selects_a_share(world):
    ids = bulk_ready_workunits(world.project, world.app_id, 10, quorum=1,
                               host_ids=world.hosts, for_assimilation=True)
    run_daemon(Recorder, world.project, "-mod", "3", "1")
    done = {r["id"] for r in world.db.query("SELECT id FROM workunit WHERE assimilate_state=2")}
    assert done == {i for i in ids if i % 3 == 1}
    assert len(Recorder.calls) == len(done)


def test_one_pass_n_wu_limits_work(world):
    bulk_ready_workunits(world.project, world.app_id, 7, quorum=1, host_ids=world.hosts,
                         for_assimilation=True)
    run_daemon(Recorder, world.project, "--one_pass_N_WU", "3")
    assert len(Recorder.calls) == 3
    assert world.db.query_one("SELECT count(*) n FROM workunit WHERE assimilate_state=2")["n"] == 3


def test_result_store_records_outputs_and_errors(world):
    db = world.db
    ok = validated_wu(world, "good", outputs=((b"1.5\n",), (b"1.5\n",)))
    bad = run_to_validation(world.project, world.app_id, world.hosts[:2], [None, None],
                            "broken", min_quorum=2, max_error_results=1)
    store = world.project.path + "/store"
    assert run_daemon(ResultStoreAssimilator, world.project, "--store", store) == 0
    rec = read_record(store, "testapp", "good")
    assert rec["status"] == "done" and rec["wu_id"] == ok
    assert rec["canonical_result_id"] == wu_row(db, ok)["canonical_resultid"]
    [out] = rec["outputs"]
    with open(os.path.join(store, "testapp", out["file"]), "rb") as f:
        assert f.read() == b"1.5\n"
    assert out["nbytes"] == 4
    err = read_record(store, "testapp", "broken")
    assert err["status"] == "error" and err["wu_id"] == bad and err["outputs"] == []
    assert err["error_mask"] & WuError.TOO_MANY_ERROR_RESULTS
    assert "too many results ended in error" in err["error"]
    # batch workunits are grouped by batch
    db.execute("UPDATE workunit SET assimilate_state=1, batch=7 WHERE id=%s", (ok,))
    run_daemon(ResultStoreAssimilator, world.project, "--store", store)
    assert read_record(store, "batch_7", "good")["batch"] == 7


def test_result_store_several_outputs_with_a_missing_optional_one(world):
    from boinc_pymw.local.simulate import Client, Scheduler, create_workunit, result_xml_doc_in

    db, project = world.db, world.project
    wu_id = create_workunit(project, world.app_id, "multi", min_quorum=1, target_nresults=1)
    wu = db.query_one("SELECT * FROM workunit WHERE id=%s", (wu_id,))
    xml, _ = result_xml_doc_in("multi_0", 3, optional=[2])
    from boinc_pymw.local.simulate import result_row

    db.insert("result", result_row(wu, 0, xml_doc_in=xml))
    r = Scheduler(project, world.av_id).send(wu_id, world.hosts[0])
    Client(project, world.hosts[0]).succeed(r, [b"first", b"", None])
    Transitioner(project).transition(wu_id)
    run_daemon(BitwiseValidator, project)
    # the empty second output makes the bitwise validator reject the only result
    assert db.query_one("SELECT validate_state FROM result WHERE id=%s",
                        (r["id"],))["validate_state"] == 2
    # a project that accepts empty outputs validates it; the store records all three
    class LenientBitwise(BitwiseValidator):
        allow_empty_outputs = True

    db.execute("UPDATE result SET validate_state=0, outcome=1 WHERE id=%s", (r["id"],))
    db.execute("UPDATE workunit SET need_validate=1, target_nresults=1 WHERE id=%s", (wu_id,))
    run_daemon(LenientBitwise, project)
    store = project.path + "/store"
    run_daemon(ResultStoreAssimilator, project, "--store", store)
    rec = read_record(store, "testapp", "multi")
    assert [(o["open_name"], o["nbytes"], o["file"]) for o in rec["outputs"]] == [
        ("out0", 5, "multi/out0"), ("out1", 0, "multi/out1"), ("out2", 0, None)]
