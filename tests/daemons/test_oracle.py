"""BOINC's own libsched (Debian's libsched.so.7) judges our validator:
DB_VALIDATOR_ITEM_SET reads the same workunit/result sets we do, and
assign_credit_set computes the same credit and statistics."""

from __future__ import annotations

import os
import time

import pytest

from boinc_pymw.boinc.credit import AppVersionStats, HAV_FIELDS, assign_credit_set
from boinc_pymw.local.simulate import add_app_version, bulk_ready_workunits, run_to_validation
from boinc_pymw.daemons.bitwise_validator import BitwiseValidator

from oracle import build as oracle_build  # tests/oracle: the shared C++ oracle builder

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="session")
def validator_oracle():
    return oracle_build.build_oracle("validator_oracle", os.path.join(HERE, "validator_oracle.cpp"))


def boinc_groups(exe, project, app_id, limit=1000, mod=0, rem=0, min_id=0, max_id=0):
    out = oracle_build.run_oracle(exe, "enumerate", project.path, app_id, limit, mod, rem,
                                  min_id, max_id)
    groups = {}
    for line in out.splitlines():
        wu, _, ids = line.partition(":")
        groups[int(wu)] = sorted(int(i) for i in ids.split())
    return groups


def our_groups(project, *args):
    v = BitwiseValidator(BitwiseValidator.parse_args(["--app", "testapp", *args]), project=project)
    v.app = v.lookup_app()
    return {wu["id"]: sorted(r["id"] for r in rs) for wu, rs in v.enumerate_workunits()}


def test_same_validator_sets_as_libsched(world, validator_oracle):
    project = world.project
    # 700 workunits x quorum 2 = 1400 rows: more than one query's LIMIT 1000
    ids = bulk_ready_workunits(project, world.app_id, 700, quorum=2, host_ids=world.hosts)
    # some that must not be seen: other app, need_validate 0
    bulk_ready_workunits(project, world.app_id, 5, quorum=1, host_ids=world.hosts,
                         prefix="done", for_assimilation=True)
    ours = our_groups(project)
    theirs = boinc_groups(validator_oracle, project, world.app_id)
    assert ours == theirs
    assert 400 < len(ours) < 700        # the last, possibly incomplete group was dropped
    assert all(len(v) == 2 for v in ours.values())
    for mod, rem in ((3, 0), (3, 2)):
        assert our_groups(project, "--mod", str(mod), str(rem)) == boinc_groups(
            validator_oracle, project, world.app_id, mod=mod, rem=rem)
    lo, hi = ids[100], ids[160]
    ours = our_groups(project, "--min_wu_id", str(lo), "--max_wu_id", str(hi))
    assert ours == boinc_groups(validator_oracle, project, world.app_id, min_id=lo, max_id=hi)
    assert sorted(ours) == ids[100:161]


def parse_credit(out):
    credit, havs, avs = None, {}, {}
    for line in out.splitlines():
        if line.startswith("credit="):
            credit = float(line.split("=", 1)[1])
        elif line.startswith("hav "):
            words = line.split()
            havs[int(words[1])] = {k: float(v) for k, v in (w.split("=") for w in words[3:])}
        elif line.startswith("av "):
            words = line.split()
            i = words.index("credit_samples")
            avs[int(words[1])] = ([float(x) for x in words[3:i]], [float(x) for x in words[i + 1:]])
    return credit, havs, avs


@pytest.mark.parametrize("case", ["fresh", "scaled", "one_outlier_host", "capped",
                                  "outlier_capped"])
def test_same_credit_as_libsched(world, validator_oracle, case):
    project, db = world.project, world.db
    add_app_version(project, world.app_id, 1, version_num=150)   # id 2: not BOINC's "id 1" case
    av = add_app_version(project, world.app_id, 1, version_num=200)
    db.execute("UPDATE app SET min_avg_pfc=%s WHERE id=%s", (8.0, world.app_id))
    outputs = [[b"same"]] * 3
    wu_id = run_to_validation(project, world.app_id, world.hosts[:3], outputs, "wu",
                              min_quorum=3, app_version_id=av)
    db.execute("UPDATE result SET validate_state=1 WHERE workunitid=%s", (wu_id,))
    if case in ("scaled", "one_outlier_host", "capped", "outlier_capped"):
        db.execute("UPDATE app_version SET pfc_n=150, pfc_avg=11, pfc_scale=0.9 WHERE id=%s", (av,))
        for n, host in enumerate(world.hosts[:3]):
            db.insert("host_app_version", {
                "host_id": host, "app_version_id": av, "pfc_n": 15 + n, "pfc_avg": 9 + n,
                "et_n": 15, "et_avg": 1e-10, "et_var": 1e-22, "et_q": 1e-21,
                "max_jobs_per_day": 5, "n_jobs_today": 0, "turnaround_n": 30,
                "turnaround_avg": 4000, "turnaround_var": 10, "turnaround_q": 5,
                "consecutive_valid": 12})
    if case in ("one_outlier_host", "outlier_capped"):
        db.execute("UPDATE result SET elapsed_time=elapsed_time*30 WHERE name='wu_2'")
    # "outlier_capped": only the outlier's credit is over the cap, so it does not vote
    if case == "outlier_capped":
        db.execute("UPDATE workunit SET rsc_fpops_bound=1e20 WHERE id=%s", (wu_id,))
    max_granted = {"capped": 50.0, "outlier_capped": 500.0}.get(case, 200 * 1000 * 365)
    # BOINC first (hav_lookup creates missing rows), then us on the same rows
    their_credit, their_havs, their_avs = parse_credit(oracle_build.run_oracle(
        validator_oracle, "credit", project.path, world.app_id, wu_id, max_granted))
    wu = db.query_one("SELECT * FROM workunit WHERE id=%s", (wu_id,))
    app = db.query_one("SELECT * FROM app WHERE id=%s", (world.app_id,))
    results = db.query("SELECT * FROM result WHERE workunitid=%s ORDER BY id", (wu_id,))
    havs = []
    for r in results:
        row = db.query_one("SELECT * FROM host_app_version WHERE host_id=%s AND "
                           "app_version_id=%s", (r["hostid"], av))
        havs.append({k: float(v) if k.endswith(("_n", "_avg", "_var", "_q")) else v
                     for k, v in row.items()})
    stats = AppVersionStats()
    credit = assign_credit_set(wu, results, havs, app, stats, db, max_granted)
    assert credit == pytest.approx(their_credit, rel=1e-12)
    for r, hav in zip(results, havs):
        theirs = their_havs[r["id"]]
        for field in HAV_FIELDS:
            if field in theirs:
                assert hav[field] == pytest.approx(theirs[field], rel=1e-12, abs=1e-300), field
    ours_av = stats.rows[av]
    assert ours_av["pfc_samples"] == pytest.approx(their_avs[av][0])
    assert ours_av["credit_samples"] == pytest.approx(their_avs[av][1])


def test_same_credit_bookkeeping_as_libsched(world, validator_oracle):
    """grant_credit + compute_avg_turnaround + the host write, BOINC's and ours side by side."""
    from boinc_pymw.boinc.credit import HOST_FIELDS, compute_avg_turnaround, grant_credit
    from boinc_pymw.boinc.testing import add_host, add_team, add_user
    from boinc_pymw.boinc.validator import update_rows

    project, db = world.project, world.db
    now = time.time()
    start = now - 2 * 86400
    pairs = []
    for side in ("boinc", "ours"):
        team = add_team(project, f"team {side}", total_credit=100.0, expavg_credit=50.0,
                        expavg_time=now - 86400)
        user = add_user(project, f"{side}@example.org", teamid=team, total_credit=40.0,
                        expavg_credit=20.0, expavg_time=now - 3 * 86400)
        host = add_host(project, user, total_credit=30.0, expavg_credit=10.0,
                        expavg_time=now - 5 * 86400, avg_turnaround=5000.0)
        pairs.append((host, user, team))
    for credit, turnaround in ((12.5, 3600.0), (7.25, 7200.0)):
        (bh, _, _), (oh, _, _) = pairs
        oracle_build.run_oracle(validator_oracle, "grant", project.path, bh, start, credit,
                                turnaround)
        host = db.query_one("SELECT id, userid, " + ", ".join(HOST_FIELDS)
                            + " FROM host WHERE id=%s", (oh,))
        before = dict(host)
        compute_avg_turnaround(host, turnaround)
        grant_credit(db, host, start, credit)
        update_rows(db, "host", ("id",), [((oh,), {f: host[f] for f in HOST_FIELDS
                                                   if host[f] != before[f]})])
    for table, index in (("host", 0), ("user", 1), ("team", 2)):
        cols = "total_credit, expavg_credit, expavg_time" + (
            ", avg_turnaround" if table == "host" else "")
        theirs, ours = (db.query_one(f"SELECT {cols} FROM {table} WHERE id=%s", (p[index],))
                        for p in pairs)
        assert ours["total_credit"] == pytest.approx(theirs["total_credit"], rel=1e-12), table
        # expavg depends on "now", which differs by the milliseconds between the calls
        assert ours["expavg_credit"] == pytest.approx(theirs["expavg_credit"], rel=1e-5), table
        assert ours["expavg_time"] == pytest.approx(theirs["expavg_time"], abs=5), table
        if table == "host":
            assert ours["avg_turnaround"] == pytest.approx(theirs["avg_turnaround"], rel=1e-12)
        start_total = {"host": 30.0, "user": 40.0, "team": 100.0}[table]
        assert theirs["total_credit"] == pytest.approx(start_total + 12.5 + 7.25)
