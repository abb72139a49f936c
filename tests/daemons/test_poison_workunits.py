"""No workunit stops a daemon (issue 13): a volunteer's spoiled output ends in BOINC's
error states, an infrastructure fault is retried, a handler bug sets the workunit aside
after a few failures, and a stop while the database is away is a clean exit."""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import threading

import pytest

from boinc_pymw.boinc.assimilator import Assimilator
from boinc_pymw.boinc.db import Database
from boinc_pymw.boinc.quarantine import Quarantine, quarantine_path
from boinc_pymw.boinc.states import AssimilateState, Outcome, ValidateState
from boinc_pymw.daemons.bitwise_validator import BitwiseValidator
from boinc_pymw.daemons.result_store import ResultStoreAssimilator, read_record
from boinc_pymw.local.simulate import run_to_validation

from .conftest import run_daemon


def wu_row(db, wu_id):
    return db.query_one("SELECT * FROM workunit WHERE id=%s", (wu_id,))


def results_of(db, wu_id):
    return db.query("SELECT * FROM result WHERE workunitid=%s ORDER BY id", (wu_id,))


def events(project, kind):
    path = quarantine_path(project.path, "testapp", kind)
    if not os.path.exists(path):
        return []
    return [json.loads(line) for line in open(path)]


def validated(world, name, outputs=((b"a",), (b"a",)), n_outputs=1, no_validate=(),
              max_nbytes=None):
    """A workunit with a canonical result, ready for the assimilator."""
    p, db = world.project, world.db
    wu_id = run_to_validation(p, world.app_id, world.hosts[:len(outputs)], [],
                              name, min_quorum=len(outputs), target_nresults=len(outputs),
                              n_outputs=n_outputs, app_version_id=world.av_id)
    # mark outputs <no_validate/> / set <max_nbytes> as the output template would
    for r in results_of(db, wu_id):
        xml = r["xml_doc_in"].decode()
        for n in no_validate:
            xml = xml.replace(f"<open_name>out{n}</open_name>",
                              f"<open_name>out{n}</open_name><no_validate/>")
        if max_nbytes:
            xml = xml.replace("<max_nbytes>5000000</max_nbytes>",
                              f"<max_nbytes>{max_nbytes}</max_nbytes>")
        db.execute("UPDATE result SET xml_doc_in=%s WHERE id=%s", (xml, r["id"]))
    from boinc_pymw.local.simulate import Client, Scheduler, Transitioner

    sched = Scheduler(p, world.av_id)
    for host, out in zip(world.hosts, outputs):
        r = sched.send(wu_id, host)
        Client(p, host).succeed(r, out)
    Transitioner(p, n_outputs).transition(wu_id)
    assert run_daemon(BitwiseValidator, p) == 0
    assert wu_row(db, wu_id)["canonical_resultid"], "the workunit should have validated"
    return wu_id


# -- the volunteer's or the workunit's fault ------------------------------------------------
@pytest.mark.parametrize("spoil", ["no_validate_missing", "no_validate_oversized",
                                   "removed_after_validation", "symlink_after_validation",
                                   "symlink_inside_upload_dir", "over_max_nbytes"])
def test_spoiled_canonical_output_gets_an_error_record(world, tmp_path, spoil):
    p, db = world.project, world.db
    kwargs = {}
    if spoil == "no_validate_missing":
        kwargs = dict(n_outputs=2, no_validate=[1], outputs=((b"a", None), (b"a", None)))
    elif spoil == "no_validate_oversized":
        kwargs = dict(n_outputs=2, no_validate=[1], max_nbytes=100,
                      outputs=((b"a", b"x" * 101), (b"a", b"x" * 101)))
    elif spoil == "over_max_nbytes":
        kwargs = dict(max_nbytes=100, outputs=((b"a",), (b"a",)))
    victim = validated(world, "victim", **kwargs)
    good = validated(world, "good")
    canonical = db.query_one("SELECT * FROM result WHERE id=%s",
                             (wu_row(db, victim)["canonical_resultid"],))
    from boinc_pymw.boinc.output_files import parse_file_refs

    path = p.upload_path(parse_file_refs(canonical["xml_doc_in"])[0]["name"])
    if spoil == "removed_after_validation":
        os.unlink(path)
    elif spoil == "symlink_after_validation":
        other = tmp_path / "elsewhere"
        other.write_bytes(b"a")
        os.unlink(path)
        os.symlink(other, path)
    elif spoil == "symlink_inside_upload_dir":
        other = os.path.join(p.upload_dir, "another_volunteers_file")
        with open(other, "wb") as f:
            f.write(b"a")
        os.unlink(path)
        os.symlink(other, path)
    elif spoil == "over_max_nbytes":
        with open(path, "wb") as f:          # grown past <max_nbytes> after validation
            f.write(b"y" * 101)
    store = str(tmp_path / "store")
    assert run_daemon(ResultStoreAssimilator, p, "--store", store) == 0
    assert wu_row(db, victim)["assimilate_state"] == AssimilateState.DONE
    assert wu_row(db, good)["assimilate_state"] == AssimilateState.DONE
    rec = read_record(store, "testapp", "victim")
    assert rec["status"] == "error" and rec["outputs"] == []
    assert rec["canonical_result"] == canonical["name"]
    reason = {"no_validate_missing": "missing", "no_validate_oversized": "limit",
              "removed_after_validation": "missing",
              "symlink_after_validation": "outside upload_dir",
              "symlink_inside_upload_dir": "symbolic link",
              "over_max_nbytes": "100-byte limit"}[spoil]
    assert reason in rec["error"], rec["error"]
    assert read_record(store, "testapp", "good")["status"] == "done"
    # noted for the record, not counted as a handler failure
    assert [e["event"] for e in events(p, "assimilator")] == ["bad_output"]


def test_spoiled_output_in_a_plain_assimilator_is_assimilated_and_noted(world):
    victim = validated(world, "victim", n_outputs=2, no_validate=[1],
                       outputs=((b"a", None), (b"a", None)))

    class ReadsEverything(Assimilator):
        def assimilate(self, wu, results, canonical):
            for f in self.output_files(canonical):
                self.read_output(f)

    assert run_daemon(ReadsEverything, world.project) == 0
    assert wu_row(world.db, victim)["assimilate_state"] == AssimilateState.DONE
    [event] = events(world.project, "assimilator")
    assert event["event"] == "bad_output" and "missing" in event["error"]


@pytest.mark.parametrize("fpops", [0.0, -1.0])
def test_rsc_fpops_est_zero_validates_and_daemon_goes_on(world, fpops):
    db = world.db
    bad = run_to_validation(world.project, world.app_id, world.hosts[:2], [[b"a"], [b"a"]],
                            "zero", min_quorum=2, app_version_id=world.av_id,
                            rsc_fpops_est=fpops)
    # an old client (no elapsed time) on the other: the PFC is the WU estimate, 0
    db.execute("UPDATE result SET elapsed_time=0 WHERE workunitid=%s ORDER BY id LIMIT 1",
               (bad,))
    after = run_to_validation(world.project, world.app_id, world.hosts[:2], [[b"b"], [b"b"]],
                              "after", min_quorum=2, app_version_id=world.av_id)
    assert run_daemon(BitwiseValidator, world.project) == 0
    for wu_id in (bad, after):
        assert [r["validate_state"] for r in results_of(db, wu_id)] == [ValidateState.VALID] * 2
        assert wu_row(db, wu_id)["need_validate"] == 0
    for r in results_of(db, bad):
        assert r["granted_credit"] >= 0         # a number the database holds, not NaN
    hav = db.query("SELECT * FROM host_app_version")
    assert all(h["et_avg"] == h["et_avg"] for h in hav)


# -- a bug in the project's handler --------------------------------------------------------
class Buggy(Assimilator):
    seen: list = []

    def assimilate(self, wu, results, canonical):
        type(self).seen.append(wu["name"])
        if wu["name"] == "poison":
            raise KeyError("a bug in the project's handler")


def test_handler_bug_exits_for_cron_until_the_workunit_is_set_aside(world):
    Buggy.seen = []
    poison = validated(world, "poison")
    others = [validated(world, f"ok{i}") for i in range(2)]
    db = world.db
    # BOINC's policy first: exit 1, bin/start --cron restarts, the WU is tried again
    assert run_daemon(Buggy, world.project) == 1
    assert run_daemon(Buggy, world.project) == 1
    # the third failure sets it aside, and the daemon goes on with the others
    assert run_daemon(Buggy, world.project) == 0
    assert wu_row(db, poison)["assimilate_state"] == AssimilateState.READY   # left for a human
    assert all(wu_row(db, w)["assimilate_state"] == AssimilateState.DONE for w in others)
    got = events(world.project, "assimilator")
    assert [e["event"] for e in got] == ["failure"] * 3 + ["quarantined"]
    assert got[-1]["wu_name"] == "poison" and "KeyError" in got[-1]["traceback"]
    # set aside: not handed to the handler again
    Buggy.seen = []
    assert run_daemon(Buggy, world.project) == 0
    assert Buggy.seen == []
    # released by a human: tried again
    Quarantine(quarantine_path(world.project.path, "testapp", "assimilator"), "assimilator",
               "testapp").release(poison, "poison")
    assert run_daemon(Buggy, world.project) == 1
    assert Buggy.seen == ["poison"]


def test_continue_on_error_never_leaves_a_workunit_ready_for_good(world):
    """It is retried on later passes and, after 3 failures, set aside with a record."""
    Buggy.seen = []
    poison = validated(world, "poison")
    options = Buggy.parse_args(["--app", "testapp", "--continue_on_error",
                                "--sleep_interval", "0"])
    daemon = Buggy(options, project=world.project)
    passes = 0
    daemon.app = daemon.lookup_app()
    while passes < 6:
        daemon.do_pass()
        passes += 1
    assert Buggy.seen == ["poison"] * 3
    assert [e["event"] for e in events(world.project, "assimilator")] == \
        ["failure"] * 3 + ["quarantined"]
    assert wu_row(world.db, poison)["assimilate_state"] == AssimilateState.READY


class InitBug(BitwiseValidator):
    def init_result(self, result):
        if result["name"].startswith("poison"):
            raise AttributeError("a bug in init_result")
        return super().init_result(result)


def test_validator_handler_bug_is_set_aside_too(world):
    db = world.db
    poison = run_to_validation(world.project, world.app_id, world.hosts[:2], [[b"a"], [b"a"]],
                               "poison", min_quorum=2, app_version_id=world.av_id)
    ok = run_to_validation(world.project, world.app_id, world.hosts[:2], [[b"a"], [b"a"]],
                           "fine", min_quorum=2, app_version_id=world.av_id)
    codes = [run_daemon(InitBug, world.project, "--wu_id", str(poison)) for _ in range(3)]
    assert codes == [1, 1, 0]
    assert run_daemon(InitBug, world.project) == 0
    assert wu_row(db, poison)["need_validate"] == 1          # left for a human
    assert [r["validate_state"] for r in results_of(db, poison)] == [ValidateState.INIT] * 2
    assert [r["validate_state"] for r in results_of(db, ok)] == [ValidateState.VALID] * 2
    assert [e["event"] for e in events(world.project, "validator")] == \
        ["failure"] * 3 + ["quarantined"]


# -- the infrastructure's fault ---------------------------------------------------------------
class DiskFullTwice(ResultStoreAssimilator):
    max_backoff_seconds = 0.05
    failures = 0

    def store_outputs(self, canonical, group_dir, wu_name):
        if type(self).failures < 2:
            type(self).failures += 1
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().store_outputs(canonical, group_dir, wu_name)


def test_disk_full_backs_off_and_retries_without_loss(world, tmp_path, caplog):
    wu_id = validated(world, "wu")
    store = str(tmp_path / "store")
    assert run_daemon(DiskFullTwice, world.project, "--store", store) == 0
    assert DiskFullTwice.failures == 2
    assert wu_row(world.db, wu_id)["assimilate_state"] == AssimilateState.DONE
    assert read_record(store, "testapp", "wu")["status"] == "done"
    assert events(world.project, "assimilator") == []      # not the workunit's fault
    assert "No space left on device" in caplog.text and "retrying" in caplog.text


def test_sigterm_while_waiting_for_the_database_is_a_requested_stop(world, caplog):
    dead = Database("nowhere", "127.0.0.1", "root", "", 1, connect_timeout=1)
    options = BitwiseValidator.parse_args(["--app", "testapp"])
    validator = BitwiseValidator(options, project=world.project, db=dead)
    timer = threading.Timer(1.5, os.kill, (os.getpid(), signal.SIGTERM))
    old = signal.getsignal(signal.SIGTERM)
    timer.start()
    try:
        with caplog.at_level(logging.INFO, logger="boinc_pymw"):
            assert validator.run() == 0
    finally:
        timer.cancel()
        signal.signal(signal.SIGTERM, old)
    assert "while waiting for the database" in caplog.text
    assert "still unreachable" not in caplog.text


@pytest.mark.parametrize("name", ["line\nbreak", "coll.json", "\u00e9" * 200])
def test_workunit_name_the_store_cannot_hold_is_assimilated_and_noted(world, tmp_path, name):
    victim = validated(world, "victim")
    good = validated(world, "good")
    world.db.execute("UPDATE workunit SET name=%s WHERE id=%s", (name, victim))
    store = str(tmp_path / "store")
    assert run_daemon(ResultStoreAssimilator, world.project, "--store", store) == 0
    assert wu_row(world.db, victim)["assimilate_state"] == AssimilateState.DONE
    assert read_record(store, "testapp", "good")["status"] == "done"
    [event] = events(world.project, "assimilator")
    assert event["event"] == "bad_output" and "cannot be stored" in event["error"]
