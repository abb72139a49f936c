"""The validator against real MariaDB: quorum, canonical choice, states, credit.

Each test drives workunits through the states BOINC's transitioner, scheduler
and client set (boinc_pymw.local.simulate) and checks the rows after one pass.
"""

from __future__ import annotations

import time

import pytest

from boinc_pymw.boinc.credit import COBBLESTONE_SCALE
from boinc_pymw.local.simulate import (Client, Scheduler, Transitioner, add_app_version,
                                       run_to_validation)
from boinc_pymw.boinc.states import INT_MAX, Outcome, ServerState, ValidateState, WuError
from boinc_pymw.boinc.validator import Invalid, TransientError, Validator
from boinc_pymw.daemons.bitwise_validator import BitwiseValidator

from .conftest import run_daemon

V, I, INC, INIT = (ValidateState.VALID, ValidateState.INVALID, ValidateState.INCONCLUSIVE,
                   ValidateState.INIT)


def results_of(db, wu_id):
    return db.query("SELECT * FROM result WHERE workunitid=%s ORDER BY id", (wu_id,))


def wu_row(db, wu_id):
    return db.query_one("SELECT * FROM workunit WHERE id=%s", (wu_id,))


def states(db, wu_id):
    return [r["validate_state"] for r in results_of(db, wu_id)]


@pytest.mark.parametrize("quorum, outputs, expected_states, canonical_index", [
    (1, [b"a"], [V], 0),
    (2, [b"a", b"a"], [V, V], 0),
    (2, [b"a", b"b"], [INC, INC], None),
    (3, [b"a", b"a", b"a"], [V, V, V], 0),
    (3, [b"b", b"a", b"a"], [I, V, V], 1),
    (3, [b"a", b"b", b"c"], [INC, INC, INC], None),
])
def test_quorum_and_canonical(world, quorum, outputs, expected_states, canonical_index):
    db = world.db
    wu_id = run_to_validation(world.project, world.app_id, world.hosts[:len(outputs)],
                              [[o] for o in outputs], "wu", min_quorum=quorum,
                              app_version_id=world.av_id)
    assert wu_row(db, wu_id)["need_validate"] == 1
    assert run_daemon(BitwiseValidator, world.project) == 0
    wu = wu_row(db, wu_id)
    rs = results_of(db, wu_id)
    assert [r["validate_state"] for r in rs] == expected_states
    assert wu["need_validate"] == 0
    if canonical_index is None:
        assert wu["canonical_resultid"] == 0
        assert wu["assimilate_state"] == 0
        # no consensus: one more replica wanted, transitioner triggered now
        assert wu["target_nresults"] == len(outputs) + 1
        assert wu["transition_time"] <= time.time() + 1
        assert all(r["granted_credit"] == 0 for r in rs)
    else:
        assert wu["canonical_resultid"] == rs[canonical_index]["id"]
        assert wu["assimilate_state"] == 1
        assert wu["transition_time"] == INT_MAX
        credit = wu["canonical_credit"]
        assert credit > 0
        for r in rs:
            assert r["granted_credit"] == (credit if r["validate_state"] == V else 0)


def test_error_results_do_not_count_and_quorum_waits(world):
    db = world.db
    # quorum 2, one success, one compute error: nothing to validate yet
    wu_id = run_to_validation(world.project, world.app_id, world.hosts[:2], [[b"a"], None],
                              "wu", min_quorum=2, app_version_id=world.av_id)
    assert wu_row(db, wu_id)["need_validate"] == 0
    # the transitioner already made a replacement for the errored result
    assert len(results_of(db, wu_id)) == 3
    tr, sched = Transitioner(world.project), Scheduler(world.project, world.av_id)
    r = sched.send(wu_id, world.hosts[2])
    Client(world.project, world.hosts[2]).succeed(r, [b"a"])
    tr.transition(wu_id)
    assert wu_row(db, wu_id)["need_validate"] == 1
    run_daemon(BitwiseValidator, world.project)
    rs = results_of(db, wu_id)
    assert [(r["outcome"], r["validate_state"]) for r in rs] == [
        (Outcome.SUCCESS, V), (Outcome.CLIENT_ERROR, I), (Outcome.SUCCESS, V)]
    assert wu_row(db, wu_id)["canonical_resultid"] == rs[0]["id"]


def test_unsent_results_become_didnt_need(world):
    db = world.db
    wu_id = run_to_validation(world.project, world.app_id, world.hosts[:2], [[b"a"], [b"a"]],
                              "wu", min_quorum=2, target_nresults=3, app_version_id=world.av_id)
    run_daemon(BitwiseValidator, world.project)
    rs = results_of(db, wu_id)
    assert (rs[2]["server_state"], rs[2]["outcome"]) == (ServerState.OVER, Outcome.DIDNT_NEED)


def test_straggler_checked_against_canonical(world):
    db = world.db
    wu_id = run_to_validation(world.project, world.app_id, world.hosts[:2], [[b"a"], [b"a"]],
                              "wu", min_quorum=2, target_nresults=4, app_version_id=world.av_id)
    sched = Scheduler(world.project, world.av_id)
    late = [sched.send(wu_id, world.hosts[2]), sched.send(wu_id, world.hosts[3])]
    run_daemon(BitwiseValidator, world.project)
    canonical_credit = wu_row(db, wu_id)["canonical_credit"]
    Client(world.project, world.hosts[2]).succeed(late[0], [b"a"])
    Client(world.project, world.hosts[3]).succeed(late[1], [b"z"])
    host_before = db.query_one("SELECT total_credit FROM host WHERE id=%s", (world.hosts[2],))
    Transitioner(world.project).transition(wu_id)
    assert wu_row(db, wu_id)["need_validate"] == 1
    run_daemon(BitwiseValidator, world.project)
    rs = results_of(db, wu_id)
    assert [r["validate_state"] for r in rs] == [V, V, V, I]
    assert rs[2]["granted_credit"] == pytest.approx(canonical_credit)
    assert rs[3]["granted_credit"] == 0
    host_after = db.query_one("SELECT total_credit FROM host WHERE id=%s", (world.hosts[2],))
    assert host_after["total_credit"] == pytest.approx(host_before["total_credit"] + canonical_credit)
    wu = wu_row(db, wu_id)
    assert wu["need_validate"] == 0 and wu["transition_time"] <= time.time() + 1


def test_too_many_success_results_sets_error_mask(world):
    db = world.db
    wu_id = run_to_validation(world.project, world.app_id, world.hosts[:3],
                              [[b"a"], [b"b"], [b"c"]], "wu", min_quorum=3,
                              max_success_results=2, app_version_id=world.av_id)
    run_daemon(BitwiseValidator, world.project)
    wu = wu_row(db, wu_id)
    assert wu["error_mask"] & WuError.TOO_MANY_SUCCESS_RESULTS
    assert wu["target_nresults"] == 4
    Transitioner(world.project).transition(wu_id)
    assert wu_row(db, wu_id)["assimilate_state"] == 1   # failed WU goes to the assimilator


def test_credit_totals_host_user_team(world):
    db = world.db
    wu_id = run_to_validation(world.project, world.app_id, world.hosts[:2], [[b"a"], [b"a"]],
                              "wu", min_quorum=2, app_version_id=world.av_id)
    run_daemon(BitwiseValidator, world.project)
    credit = wu_row(db, wu_id)["canonical_credit"]
    # app_version id 1 is an ordinary version (only 0 is BOINC's "old scheduler" case):
    # CreditNew, unscaled, gives elapsed time x FLOPS estimate (3600 s x 1e10)
    assert credit == pytest.approx(3600 * 1e10 * COBBLESTONE_SCALE)
    for host_id, user_id in zip(world.hosts[:2], world.users[:2]):
        host = db.query_one("SELECT * FROM host WHERE id=%s", (host_id,))
        user = db.query_one("SELECT * FROM user WHERE id=%s", (user_id,))
        assert host["total_credit"] == pytest.approx(credit)
        assert user["total_credit"] == pytest.approx(credit)
        assert host["expavg_credit"] > 0 and host["expavg_time"] > 0
        assert user["expavg_credit"] > 0 and user["expavg_time"] > 0
        assert host["avg_turnaround"] == pytest.approx(3600, abs=2)   # a second may tick
    team = db.query_one("SELECT * FROM team WHERE id=%s", (world.team_id,))
    assert team["total_credit"] == pytest.approx(credit)    # only user 0 is in the team
    hav = db.query("SELECT * FROM host_app_version ORDER BY host_id")
    assert [(h["consecutive_valid"], h["max_jobs_per_day"]) for h in hav] == [(1, 1), (1, 1)]


def test_creditnew_updates_pfc_statistics(world):
    db = world.db
    real_av = add_app_version(world.project, world.app_id, 1, version_num=200)
    wu_id = run_to_validation(world.project, world.app_id, world.hosts[:2], [[b"a"], [b"a"]],
                              "wu", min_quorum=2, app_version_id=real_av)
    run_daemon(BitwiseValidator, world.project)
    # elapsed 3600 s x 1e10 flops = 3.6e13 raw PFC; no scaling yet (too few samples)
    assert wu_row(db, wu_id)["canonical_credit"] == pytest.approx(3.6e13 * COBBLESTONE_SCALE)
    hav = db.query("SELECT * FROM host_app_version WHERE app_version_id=%s", (real_av,))
    assert [h["pfc_n"] for h in hav] == [1, 1]
    assert hav[0]["pfc_avg"] == pytest.approx(3.6e13 / 3600e9)
    assert hav[0]["et_n"] == 1 and hav[0]["turnaround_avg"] == pytest.approx(3600)
    av = db.query_one("SELECT * FROM app_version WHERE id=%s", (real_av,))
    assert av["pfc_n"] == 2 and av["pfc_avg"] == pytest.approx(10.0)   # flushed when idle
    assert av["expavg_credit"] > 0


@pytest.mark.parametrize("flag, expected", [
    (["--no_credit"], 0.0),
    (["--credit_from_wu"], 77.5),
    (["--credit_from_runtime"], 3600 * 1e10 * COBBLESTONE_SCALE),
    (["-credit_from_runtime", "86400"], 3600 * 1e10 * COBBLESTONE_SCALE),
    (["--max_granted_credit", "2"], 2.0),
])
def test_credit_options(world, flag, expected):
    db = world.db
    real_av = add_app_version(world.project, world.app_id, 1, version_num=200)
    wu_id = run_to_validation(world.project, world.app_id, world.hosts[:2], [[b"a"], [b"a"]],
                              "wu", min_quorum=2, app_version_id=real_av, canonical_credit=77.5)
    run_daemon(BitwiseValidator, world.project, *flag)
    rs = results_of(db, wu_id)
    assert [r["validate_state"] for r in rs] == [V, V]
    assert [r["granted_credit"] for r in rs] == [pytest.approx(expected)] * 2
    host = db.query_one("SELECT total_credit FROM host WHERE id=%s", (world.hosts[0],))
    assert host["total_credit"] == pytest.approx(expected)


class FlakyStorage(Validator):
    transient = True

    def init_result(self, result):
        if self.transient:
            raise TransientError("NFS mount gone")
        return self.read_outputs(result)

    def compare(self, a, b):
        return a == b


def test_transient_error_retries_later(world):
    db = world.db
    wu_id = run_to_validation(world.project, world.app_id, world.hosts[:2], [[b"a"], [b"a"]],
                              "wu", min_quorum=2, target_nresults=3,
                              app_version_id=world.av_id)
    db.execute("UPDATE workunit SET transition_time=%s WHERE id=%s", (INT_MAX - 5, wu_id))
    run_daemon(FlakyStorage, world.project)
    wu = wu_row(db, wu_id)
    # as validator.cpp: no decision, the results are marked inconclusive, the
    # workunit comes back in 6 hours (transition_time), nothing else changes
    assert states(db, wu_id) == [INC, INC, INIT]
    assert wu["need_validate"] == 0 and wu["canonical_resultid"] == 0
    assert wu["target_nresults"] == 3
    assert time.time() + 6 * 3600 - 5 <= wu["transition_time"] <= time.time() + 6 * 3600 + 5
    # the transitioner raises need_validate again; storage is back
    db.execute("UPDATE workunit SET need_validate=1 WHERE id=%s", (wu_id,))
    FlakyStorage.transient = False
    try:
        run_daemon(FlakyStorage, world.project)
    finally:
        FlakyStorage.transient = True
    assert states(db, wu_id)[:2] == [V, V]


class RejectsB(Validator):
    def init_result(self, result):
        data = self.read_outputs(result)[0]
        if data == b"b":
            raise Invalid("b is not an answer")
        return data

    def compare(self, a, b):
        return a == b


def test_invalid_from_init_result_is_validate_error(world):
    db = world.db
    wu_id = run_to_validation(world.project, world.app_id, world.hosts[:3],
                              [[b"b"], [b"a"], [b"a"]], "wu", min_quorum=2,
                              app_version_id=world.av_id)
    run_daemon(RejectsB, world.project)
    rs = results_of(db, wu_id)
    assert [(r["outcome"], r["validate_state"]) for r in rs] == [
        (Outcome.VALIDATE_ERROR, I), (Outcome.SUCCESS, V), (Outcome.SUCCESS, V)]
    assert wu_row(db, wu_id)["canonical_resultid"] == rs[1]["id"]


def test_dry_run_changes_nothing(world):
    db = world.db
    wu_id = run_to_validation(world.project, world.app_id, world.hosts[:2], [[b"a"], [b"a"]],
                              "wu", min_quorum=2, app_version_id=world.av_id)
    before = (wu_row(db, wu_id), results_of(db, wu_id))
    run_daemon(BitwiseValidator, world.project, "--dry_run")
    after = (wu_row(db, wu_id), results_of(db, wu_id))
    assert before == after


def test_wu_id_and_id_range_select_workunits(world):
    db = world.db
    ids = [run_to_validation(world.project, world.app_id, world.hosts[:1], [[b"a"]],
                             f"wu{i}", min_quorum=1, app_version_id=world.av_id)
           for i in range(4)]
    run_daemon(BitwiseValidator, world.project, "--wu_id", str(ids[1]))
    assert [wu_row(db, i)["need_validate"] for i in ids] == [1, 0, 1, 1]
    run_daemon(BitwiseValidator, world.project, "-min_wu_id", str(ids[2]), "-max_wu_id", str(ids[2]))
    assert [wu_row(db, i)["need_validate"] for i in ids] == [1, 0, 0, 1]
    run_daemon(BitwiseValidator, world.project, "--mod", "2", str(ids[0] % 2))
    assert [wu_row(db, i)["need_validate"] for i in ids] == [0, 0, 0, 1]


class Buggy(Validator):
    def init_result(self, result):
        raise RuntimeError("bug in the project's validator")

    def compare(self, a, b):
        return True


def test_bug_in_project_code_exits_without_touching_results(world, caplog):
    wu_id = run_to_validation(world.project, world.app_id, world.hosts[:2], [[b"a"], [b"a"]],
                              "wu", min_quorum=2, app_version_id=world.av_id)
    assert run_daemon(Buggy, world.project) == 1
    assert "bug in the project's validator" in caplog.text
    assert states(world.db, wu_id) == [INIT, INIT]          # nobody loses credit to a bug
    assert wu_row(world.db, wu_id)["need_validate"] == 1


def test_debug_level_4_prints_sql(world, caplog):
    run_to_validation(world.project, world.app_id, world.hosts[:1], [[b"a"]], "wu",
                      min_quorum=1, app_version_id=world.av_id)
    caplog.set_level(1, logger="boinc_pymw")
    run_daemon(BitwiseValidator, world.project, "-d", "4")
    assert "SQL: UPDATE workunit SET need_validate=" in caplog.text


def test_update_rows_matches_one_update_per_row(world):
    from boinc_pymw.boinc.validator import update_rows

    db = world.db
    h1, h2, h3 = world.hosts[:3]
    for h in (h1, h2, h3):
        db.insert("host_app_version", {"host_id": h, "app_version_id": 9, "pfc_n": 1,
                                       "pfc_avg": 2, "et_n": 0, "et_avg": 0, "et_var": 0,
                                       "et_q": 0, "max_jobs_per_day": 1, "n_jobs_today": 0,
                                       "turnaround_n": 0, "turnaround_avg": 0,
                                       "turnaround_var": 0, "turnaround_q": 0,
                                       "consecutive_valid": 0})
    update_rows(db, "host_app_version", ("host_id", "app_version_id"), [
        ((h1, 9), {"pfc_n": 5.0, "consecutive_valid": 3}),
        ((h2, 9), {"pfc_n": 6.0, "consecutive_valid": 4}),
        ((h3, 9), {"max_jobs_per_day": 7}),
    ])
    rows = db.query("SELECT host_id, pfc_n, consecutive_valid, max_jobs_per_day "
                    "FROM host_app_version ORDER BY host_id")
    assert [(r["pfc_n"], r["consecutive_valid"], r["max_jobs_per_day"]) for r in rows] == [
        (5.0, 3, 1), (6.0, 4, 1), (1.0, 0, 7)]
    db.execute("UPDATE user SET total_credit=10")
    u1, u2 = world.users[:2]
    update_rows(db, "user", ("id",), [((u1,), {"total_credit": 1.5, "expavg_time": 5.0}),
                                      ((u2,), {"total_credit": 2.5, "expavg_time": 6.0})],
                relative=("total_credit",))
    got = {r["id"]: (r["total_credit"], r["expavg_time"])
           for r in db.query("SELECT id, total_credit, expavg_time FROM user")}
    assert got[u1] == (11.5, 5.0) and got[u2] == (12.5, 6.0)
    assert got[world.users[2]][0] == 10
