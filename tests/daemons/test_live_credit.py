"""What a live BOINC 1.4.7 project showed (issue 12): blob columns come back as bytes,
projects have several apps and app versions with ids above 1, and app_version
``expavg_credit`` must decay as BOINC's ``update_average`` does, even for several
samples folded in within the same second."""

from __future__ import annotations

import math
import signal
import time

import pytest

from boinc_pymw.boinc.credit import (CREDIT_HALF_LIFE, PFC_MODE_APPROX, PFC_MODE_WU_EST,
                                     AppVersionStats, get_pfc, update_average)
from boinc_pymw.boinc.states import ValidateState
from boinc_pymw.boinc.testing import add_app
from boinc_pymw.daemons.bitwise_validator import BitwiseValidator
from boinc_pymw.local.simulate import add_app_version, run_to_validation

from .conftest import start_daemon_process


def boinc_update_average(now, work_start_time, work, half_life, avg, avg_time):
    """lib/util.cpp update_average, transcribed as the reference of these tests."""
    if avg_time:
        diff = max(now - avg_time, 0.0)
        weight = math.exp(-diff * math.log(2) / half_life)
        avg *= weight
        if 1.0 - weight > 1e-6:
            avg += (1 - weight) * (work / (diff / 86400))
        else:
            avg += math.log(2) * work * 86400 / half_life
    elif work:
        avg = work / ((now - work_start_time) / 86400)
    return avg, now


def two_apps(world):
    """A second app, and two app versions for each app, all with ids above 1."""
    p = world.project
    second = add_app(p, "second")
    versions = {
        "testapp": [add_app_version(p, world.app_id, 1, version_num=v) for v in (110, 120)],
        "second": [add_app_version(p, second, 1, version_num=v) for v in (100, 200)],
    }
    assert min(min(v) for v in versions.values()) > 1
    return second, versions


def test_blob_stderr_and_app_versions_above_1_validate_with_creditnew(world):
    p, db = world.project, world.db
    second, versions = two_apps(world)
    wus = {}
    for app_name, app_id in (("testapp", world.app_id), ("second", second)):
        for av in versions[app_name]:
            wus[(app_name, av)] = run_to_validation(
                p, app_id, world.hosts[:2], [[b"same"], [b"same"]], f"{app_name}_{av}",
                min_quorum=2, app_version_id=av)
    # what a real client reports: stderr.txt in a blob column (bytes, not UTF-8 here)
    db.execute("UPDATE result SET stderr_out=%s", (b"<stderr_txt>\xff\xfe ok\n</stderr_txt>\n",))
    for app_name in ("testapp", "second"):
        options = BitwiseValidator.parse_args(["--app", app_name, "--one_pass"])
        assert BitwiseValidator(options, project=p).run() == 0
    for (app_name, av), wu_id in wus.items():
        states = [r["validate_state"] for r in db.query(
            "SELECT validate_state FROM result WHERE workunitid=%s", (wu_id,))]
        assert states == [ValidateState.VALID] * 2, (app_name, av)
        row = db.query_one("SELECT pfc_n, expavg_credit FROM app_version WHERE id=%s", (av,))
        # CreditNew ran for this version: two PFC samples and its recent credit
        assert row["pfc_n"] == 2 and row["expavg_credit"] > 0, (app_name, av, row)


@pytest.mark.parametrize("av_id, stderr, mode", [
    (1, b"", PFC_MODE_APPROX),                           # id 1 is an ordinary app version
    (0, b"", PFC_MODE_WU_EST),                           # only 0 means "no app version"
    (7, b"...Device Emulation (CPU)...", PFC_MODE_WU_EST),
    (7, "Device Emulation (CPU)", PFC_MODE_WU_EST),      # the same test on text
    (7, b"\xff\xfe\x00Device Emulation (CPU)", PFC_MODE_APPROX),   # strstr stops at NUL
])
def test_get_pfc_app_version_id_and_stderr_blob(av_id, stderr, mode):
    wu = {"rsc_fpops_est": 1e12, "rsc_fpops_bound": 1e15}
    app = {"min_avg_pfc": 1.0, "host_scale_check": 0}
    result = {"app_version_id": av_id, "stderr_out": stderr, "runtime_outlier": 0,
              "elapsed_time": 100.0, "flops_estimate": 1e9, "cpu_time": 100.0,
              "received_time": 2000, "sent_time": 1000}
    hav = {"host_id": 1, "pfc_n": 0.0, "pfc_avg": 0.0, "et_n": 0.0, "et_avg": 0.0,
           "et_var": 0.0, "et_q": 0.0, "turnaround_n": 0.0, "turnaround_avg": 0.0,
           "turnaround_var": 0.0, "turnaround_q": 0.0, "consecutive_valid": 0}
    stats = AppVersionStats()
    stats.rows[av_id] = {"id": av_id, "pfc_n": 0.0, "pfc_avg": 0.0, "pfc_scale": 0.0,
                         "expavg_credit": 0.0, "expavg_time": 0.0, "pfc_samples": [],
                         "credit_samples": [], "credit_times": []}
    pfc, got = get_pfc(result, wu, app, stats, None, hav)
    assert got == mode
    if mode == PFC_MODE_APPROX:
        assert pfc == pytest.approx(100.0 * 1e9)
        assert stats.rows[av_id]["pfc_samples"] == [pytest.approx(0.1)]


@pytest.mark.parametrize("avg_time_offset", [0.0, 1e-3, 0.5, 3600.0, -5.0])
def test_update_average_matches_boinc_for_small_intervals(avg_time_offset):
    now = 1.7e9
    for avg in (0.0, 8000.0):
        ours = update_average(now, now - 3600, 12.5, CREDIT_HALF_LIFE, avg,
                              now - avg_time_offset if avg_time_offset or avg else now)
        theirs = boinc_update_average(now, now - 3600, 12.5, CREDIT_HALF_LIFE, avg,
                                      now - avg_time_offset if avg_time_offset or avg else now)
        assert ours == pytest.approx(theirs, rel=1e-12)


def test_app_version_stats_of_many_samples_in_one_second(world):
    """write_modified_app_versions folds every sample in with the same "now"."""
    db = world.db
    before = time.time() - 86400
    db.execute("UPDATE app_version SET expavg_credit=%s, expavg_time=%s, pfc_n=%s, pfc_avg=%s "
               "WHERE id=%s", (500.0, before, 3, 0.5, world.av_id))
    stats = AppVersionStats()
    av = stats.lookup(db, world.av_id)
    samples = [(0.2 + i / 100, 40.0 + i, time.time() - 3600) for i in range(8)]
    for pfc, credit, sent in samples:
        av["pfc_samples"].append(pfc)
        av["credit_samples"].append(credit)
        av["credit_times"].append(sent)
    now = time.time()
    stats.flush(db, now=now)
    n, pfc_avg, avg, avg_time = 3.0, 0.5, 500.0, before
    for pfc, credit, sent in samples:
        n += 1
        pfc_avg += (pfc - pfc_avg) / n
        avg, avg_time = boinc_update_average(now, sent, credit, CREDIT_HALF_LIFE, avg, avg_time)
    row = db.query_one("SELECT pfc_n, pfc_avg, expavg_credit, expavg_time FROM app_version "
                       "WHERE id=%s", (world.av_id,))
    assert row["pfc_n"] == 11 and row["pfc_avg"] == pytest.approx(pfc_avg, rel=1e-12)
    assert row["expavg_credit"] == pytest.approx(avg, rel=1e-12)
    assert row["expavg_time"] == pytest.approx(now, abs=1e-3)


def test_normal_daemon_writes_app_version_statistics_like_boinc(world, tmp_path):
    """Run as a daemon (not --one_pass): after the scan that found nothing, the app_version
    row holds BOINC's statistics for all samples, each folded in at the same "now"."""
    p, db = world.project, world.db
    start_avg, start_time = 800.0, time.time() - 2 * 86400
    db.execute("UPDATE app_version SET expavg_credit=%s, expavg_time=%s WHERE id=%s",
               (start_avg, start_time, world.av_id))
    wu_ids = [run_to_validation(p, world.app_id, world.hosts[:2], [[b"x"], [b"x"]], f"wu{i}",
                                min_quorum=2, app_version_id=world.av_id) for i in range(4)]
    proc = start_daemon_process(p, "validator", ["--sleep_interval", "1"], tmp_path / "marks")
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            row = db.query_one("SELECT pfc_n FROM app_version WHERE id=%s", (world.av_id,))
            if row["pfc_n"] >= 8:
                break
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        exit_code = [proc.wait(timeout=60)]
    assert exit_code == [0]
    row = db.query_one("SELECT pfc_n, pfc_avg, expavg_credit, expavg_time FROM app_version "
                       "WHERE id=%s", (world.av_id,))
    assert row["pfc_n"] == 8
    results = db.query("SELECT granted_credit, sent_time FROM result WHERE workunitid IN "
                       f"({', '.join(map(str, wu_ids))}) ORDER BY id")
    # every sample folded in at the flush time (expavg_time); BOINC's formula for each
    avg, avg_time = start_avg, start_time
    now = row["expavg_time"]
    for r in results:
        avg, avg_time = boinc_update_average(now, r["sent_time"], r["granted_credit"],
                                             CREDIT_HALF_LIFE, avg, avg_time)
    assert row["expavg_credit"] == pytest.approx(avg, rel=1e-9)


def test_handlers_get_blob_columns_as_text(world):
    """xml_doc*, stderr_out are blobs (bytes from the driver): handlers get str."""
    from boinc_pymw.boinc.assimilator import Assimilator
    from boinc_pymw.boinc.validator import Validator

    p, db = world.project, world.db
    wu_id = run_to_validation(p, world.app_id, world.hosts[:2], [[b"1"], [b"1"]], "wu",
                              min_quorum=2, app_version_id=world.av_id)
    db.execute("UPDATE result SET stderr_out=%s, xml_doc_out=%s",
               (b"Device \xff Emulation", b"<result/>"))
    seen = []

    class Looks(Validator):
        def init_result(self, result):
            seen.append({c: type(result[c]) for c in ("xml_doc_in", "xml_doc_out", "stderr_out")})
            assert "\ufffd" in result["stderr_out"]
            return self.read_outputs(result)[0]

        def compare(self, a, b):
            return a == b

    class LooksToo(Assimilator):
        def assimilate(self, wu, results, canonical):
            seen.append({"xml_doc": type(wu["xml_doc"]), "stderr_out": type(canonical["stderr_out"]),
                         "xml_doc_in": type(results[0]["xml_doc_in"])})

    options = ["--app", "testapp", "--one_pass"]
    assert Looks(Looks.parse_args(options), project=p).run() == 0
    assert LooksToo(LooksToo.parse_args(options), project=p).run() == 0
    assert len(seen) == 3 and all(t is str for row in seen for t in row.values()), seen
    assert db.query_one("SELECT assimilate_state FROM workunit WHERE id=%s",
                        (wu_id,))["assimilate_state"] == 2


def test_new_app_version_takes_over_the_hosts_statistics(world):
    """credit.cpp hav_lookup: a host's row for an older version of the same app, platform
    and plan class is given the new version's id (statistics carried on), not duplicated."""
    p, db = world.project, world.db
    old = add_app_version(p, world.app_id, 1, version_num=300)
    new = add_app_version(p, world.app_id, 1, version_num=400)
    other_platform = add_app_version(p, world.app_id, 2, version_num=500)
    host = world.hosts[0]
    db.insert("host_app_version", {
        "host_id": host, "app_version_id": old, "pfc_n": 5, "pfc_avg": 0.5, "et_n": 5,
        "et_avg": 1e-9, "et_var": 0, "et_q": 0, "max_jobs_per_day": 7, "n_jobs_today": 0,
        "turnaround_n": 5, "turnaround_avg": 100, "turnaround_var": 0, "turnaround_q": 0,
        "consecutive_valid": 4})
    run_to_validation(p, world.app_id, [host, world.hosts[1]], [[b"x"], [b"x"]], "wu",
                      min_quorum=2, app_version_id=new)
    run_to_validation(p, world.app_id, [host, world.hosts[1]], [[b"y"], [b"y"]], "wu2",
                      min_quorum=2, app_version_id=other_platform)
    options = BitwiseValidator.parse_args(["--app", "testapp", "--one_pass"])
    assert BitwiseValidator(options, project=p).run() == 0
    rows = {r["app_version_id"]: r for r in db.query(
        "SELECT * FROM host_app_version WHERE host_id=%s", (host,))}
    assert sorted(rows) == sorted([new, other_platform])      # "old" was taken over
    assert rows[new]["consecutive_valid"] == 5 and rows[new]["max_jobs_per_day"] == 8
    assert rows[new]["pfc_n"] == 6
    assert rows[other_platform]["consecutive_valid"] == 1    # another platform: a new row
