"""How fast our assimilator and validator are, next to BOINC's C++ daemons and to their own SQL.

Workload (issue 17): BOINC 1.4.7's schema, ``-n`` workunits (default 2,000;
10,000 for the long run), quorum 2, CreditNew, 8 hosts, 3 app versions.
Each daemon runs as a real process (``--one_pass``, started again until no
work is left, as C++'s one pass stops after one query's rows) on the same
restored database: our ``bitwise_validator``, ``result_store`` and a no-op
Python assimilator, and, when ``$BOINC_SERVER_DAEMONS`` names a directory
holding BOINC's built ``sample_bitwise_validator``, ``sample_assimilator``
and ``sample_dummy_assimilator`` (e.g. ``boinc/sched`` of a built 1.4.7
tree), those too, taking turns for ``--rounds`` rounds (medians). It prints
workunits/s and the ratio ours / C++, and checks both leave the same
database end state (validate states, canonical results, granted credit,
host/user/team totals, host_app_version statistics).

With ``--floor``, the older comparison runs too:

For 10,000 workunits (real MariaDB at 127.0.0.1:3306, a throw-away project):

* assimilation: ``Assimilator`` with a no-op handler, one pass;
* validation: ``BitwiseValidator`` (quorum 2, MD5 of each output file), one pass;
* the floor for each: the SAME SQL statements the daemon issued (recorded in a
  separate run, then replayed as bare statements in one loop with the same
  commits) -- the database work without our Python around it.

Daemon and floor runs alternate on the same restored data, best of
``--repeats``; prints workunits/s for each and the ratio daemon time / floor
time (target: within 2x). Commit latency (fsync) dominates both, so run it
on a quiet machine.

Usage: ``BOINC_SERVER_DAEMONS=/path/to/boinc/sched .venv/bin/python
benchmarks/bench_daemons.py [-n 2000] [--rounds 3] [--floor]``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from boinc_pymw.boinc.assimilator import Assimilator  # noqa: E402
from boinc_pymw.local.simulate import add_app_version, bulk_ready_workunits  # noqa: E402
from boinc_pymw.boinc.testing import (add_app, add_host, add_platform, add_team,  # noqa: E402
                                      add_user, make_project)
from boinc_pymw.daemons.bitwise_validator import BitwiseValidator  # noqa: E402

TABLES = ("workunit", "result", "host", "user", "team", "host_app_version", "app_version")
ENV_DAEMONS = "BOINC_SERVER_DAEMONS"
NOOP_SCRIPT = """#!{python}
import sys
from boinc_pymw.boinc.assimilator import Assimilator

class NoOp(Assimilator):
    def assimilate(self, wu, results, canonical):
        pass

sys.exit(NoOp.main())
"""


class NoOpAssimilator(Assimilator):
    def assimilate(self, wu, results, canonical):
        pass


class RecordingDB:
    """Passes statements through to the Database and keeps (sql, params, kind) in order."""

    def __init__(self, db):
        self._db = db
        self.log = []

    def __getattr__(self, name):
        return getattr(self._db, name)

    def query(self, sql, params=None):
        self.log.append(("read", sql, params))
        return self._db.query(sql, params)

    def query_one(self, sql, params=None):
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def execute(self, sql, params=None):
        if sql.strip().upper() != "START TRANSACTION":
            self.log.append(("write", sql, params))
        return self._db.execute(sql, params)

    def executemany(self, sql, seq):
        self.log.append(("many", sql, list(seq)))
        return self._db.executemany(sql, seq)

    def insert_many(self, table, rows):
        rows = list(rows)
        if rows:
            cols = list(rows[0])
            sql = (f"INSERT INTO `{table}` ({', '.join(f'`{c}`' for c in cols)}) "
                   f"VALUES ({', '.join(['%s'] * len(cols))})")
            self.log.append(("many", sql, [[r[c] for c in cols] for r in rows]))
        return self._db.insert_many(table, rows)

    @contextlib.contextmanager
    def transaction(self):
        self.log.append(("begin", None, None))
        with self._db.transaction():
            yield self
        self.log.append(("commit", None, None))


def replay(db, log) -> float:
    """The recorded statements as bare SQL in one loop; returns seconds."""
    conn = db.connection
    cursor = conn.cursor()
    start = time.perf_counter()
    for kind, sql, params in log:
        if kind == "begin":
            cursor.execute("START TRANSACTION")
        elif kind == "commit":
            conn.commit()
        elif kind == "many":
            cursor.executemany(sql, params)
        else:
            cursor.execute(sql, params)
            if kind == "read":
                cursor.fetchall()
    elapsed = time.perf_counter() - start
    cursor.close()
    return elapsed


def snapshot(db):
    for t in TABLES:
        db.execute(f"DROP TABLE IF EXISTS bench_{t}")
        db.execute(f"CREATE TABLE bench_{t} AS SELECT * FROM `{t}`")


def restore(db):
    for t in TABLES:
        db.execute(f"DELETE FROM `{t}`")
        db.execute(f"INSERT INTO `{t}` SELECT * FROM bench_{t}")


def run_daemon(cls, project, db) -> float:
    daemon = cls(cls.parse_args(["--app", "benchapp", "--one_pass", "-d", "1"]), project=project,
                 db=db)
    start = time.perf_counter()
    assert daemon.run() == 0
    return time.perf_counter() - start


def measure(name, cls, project, n, check_sql, repeats):
    """Record the daemon's SQL once, then alternate daemon and bare replay; best of each."""
    db = project.db
    snapshot(db)
    recorder = RecordingDB(db)
    run_daemon(cls, project, recorder)
    assert db.query_one(check_sql)["n"] == n, f"{name}: not every workunit was handled"
    ours = floor = float("inf")
    for _ in range(repeats):
        restore(db)
        ours = min(ours, run_daemon(cls, project, db))
        assert db.query_one(check_sql)["n"] == n, f"{name}: not every workunit was handled"
        restore(db)
        floor = min(floor, replay(db, recorder.log))
        assert db.query_one(check_sql)["n"] == n, f"{name}: the replay did not do the same work"
    restore(db)
    statements = sum(1 for kind, _, _ in recorder.log if kind not in ("begin", "commit"))
    print(f"{name:<34} {n / ours:>9.0f} WU/s   ({ours:.2f} s)")
    print(f"{'  floor: same SQL, bare loop':<34} {n / floor:>9.0f} WU/s   ({floor:.2f} s, "
          f"{statements / n:.1f} statements/WU)")
    print(f"{'  ratio daemon / floor':<34} {ours / floor:>9.2f}x   (target <= 2x)")
    return ours / floor


# -- the BOINC-like workload, daemons as processes ------------------------------------------
def build_workload(project, n: int) -> str:
    """n workunits, quorum 2, 8 hosts, 3 app versions, outputs uploaded; returns the app."""
    app_id = add_app(project, "benchapp")
    platform = add_platform(project)
    versions = [add_app_version(project, app_id, platform, version_num=v) for v in (100, 110, 200)]
    team = add_team(project, "bench team")
    users = [add_user(project, f"u{i}@example.org", teamid=team if i % 2 else 0) for i in range(8)]
    hosts = [add_host(project, u) for u in users]
    # each host runs one app version, as a scheduler sends one per platform: hosts 0-2
    # version 1, 3-5 version 2, 6-7 version 3; quorum pairs within each group
    pairs = [(0, 1, 0), (1, 2, 0), (2, 0, 0), (3, 4, 1), (4, 5, 1), (5, 3, 1), (6, 7, 2), (7, 6, 2)]
    for k, (a, b, v) in enumerate(pairs):
        share = n // len(pairs) + (1 if k < n % len(pairs) else 0)
        bulk_ready_workunits(project, app_id, share, quorum=2, host_ids=[hosts[a], hosts[b]],
                             prefix=f"wl{k}", app_version_id=versions[v])
    return "benchapp"


def timed_passes(argv: list, env: dict, db, left_sql: str, cwd: str) -> float:
    """Run ``argv`` (a --one_pass daemon) again until ``left_sql`` counts 0; seconds."""
    start = time.perf_counter()
    for _ in range(1000):
        proc = subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{argv[0]} exited {proc.returncode}: {proc.stderr[-2000:]}")
        if db.query_one(left_sql)["n"] == 0:
            return time.perf_counter() - start
    raise RuntimeError(f"{argv[0]} made no progress")


END_STATE = {
    "result": "SELECT id, validate_state, outcome, server_state, granted_credit FROM result",
    "workunit": "SELECT id, need_validate, canonical_resultid, canonical_credit, "
                "assimilate_state, error_mask, target_nresults FROM workunit",
    # expavg_credit is left out: it depends on the second each run happens in
    "host": "SELECT id, total_credit, avg_turnaround FROM host",
    "user": "SELECT id, total_credit FROM user",
    "team": "SELECT id, total_credit FROM team",
    "host_app_version": "SELECT host_id, app_version_id, pfc_n, pfc_avg, et_n, et_avg, "
                        "turnaround_n, turnaround_avg, consecutive_valid, max_jobs_per_day "
                        "FROM host_app_version",
}


def end_state(db) -> dict:
    return {t: sorted(tuple(r.values()) for r in db.query(sql)) for t, sql in END_STATE.items()}


def same_state(a: dict, b: dict) -> list:
    """Where the end states differ (numbers to 1e-6 relative: expavg depends on "now")."""
    def close(x, y):
        if isinstance(x, float) or isinstance(y, float):
            return abs(float(x) - float(y)) <= 1e-6 * max(1.0, abs(float(x)), abs(float(y)))
        return x == y
    out = []
    for t in a:
        if len(a[t]) != len(b[t]):
            out.append(f"{t} ({len(a[t])} vs {len(b[t])} rows)")
            continue
        bad = [(ra, rb) for ra, rb in zip(a[t], b[t])
               if not all(close(x, y) for x, y in zip(ra, rb))]
        if bad:
            out.append(f"{t} ({len(bad)} rows, e.g. C++ {bad[0][0]} ours {bad[0][1]})")
    return out


def workload(args) -> int:
    cpp_dir = os.environ.get(ENV_DAEMONS)
    base = tempfile.mkdtemp(prefix="bench_daemons_wl_")
    project = make_project(os.path.join(base, "proj"), f"bench_wl_{os.getpid()}")
    db = project.db
    try:
        t = time.perf_counter()
        app = build_workload(project, args.n)
        print(f"bench_daemons: {args.n} workunits, quorum 2, 8 hosts, 3 app versions, "
              f"MariaDB {db.query_one('SELECT version() v')['v']} (setup "
              f"{time.perf_counter() - t:.1f} s)")
        env = dict(os.environ, BOINC_PROJECT_DIR=project.path)
        cwd = project.path
        py = [sys.executable, "-m"]
        common = ["--app", app, "--one_pass", "-d", "1"]
        noop = os.path.join(project.path, "bin", "bench_noop_assimilator")
        with open(noop, "w") as f:
            f.write(NOOP_SCRIPT.format(python=sys.executable))
        os.chmod(noop, 0o755)
        store_dirs = [os.path.join(project.path, d) for d in ("results_store", "sample_results")]
        left_validate = "SELECT count(*) n FROM workunit WHERE need_validate>0"
        left_assimilate = "SELECT count(*) n FROM workunit WHERE assimilate_state=1"
        daemons = [
            ("bitwise validator", left_validate, "before_validation",
             [*py, "boinc_pymw.daemons.bitwise_validator", *common],
             cpp_dir and [os.path.join(cpp_dir, "sample_bitwise_validator"), *common]),
            ("result_store vs sample_assimilator", left_assimilate, "validated",
             [*py, "boinc_pymw.daemons.result_store", *common],
             cpp_dir and [os.path.join(cpp_dir, "sample_assimilator"), *common]),
            ("no-op Python vs sample_dummy_assimilator", left_assimilate, "validated",
             [noop, *common],
             cpp_dir and [os.path.join(cpp_dir, "sample_dummy_assimilator"), *common]),
        ]
        snapshot(db)                                   # the "before_validation" state
        # the "validated" state: validated once by our daemon
        timed_passes(daemons[0][3], env, db, left_validate, cwd)
        for t in TABLES:
            db.execute(f"DROP TABLE IF EXISTS bench2_{t}")
            db.execute(f"CREATE TABLE bench2_{t} AS SELECT * FROM `{t}`")

        def restore_to(state):
            prefix = "bench" if state == "before_validation" else "bench2"
            for t in TABLES:
                db.execute(f"DELETE FROM `{t}`")
                db.execute(f"INSERT INTO `{t}` SELECT * FROM {prefix}_{t}")
            for d in store_dirs:
                shutil.rmtree(d, ignore_errors=True)

        print(f"{'daemon':<42} {'BOINC C++':>10} {'ours':>10} {'ratio':>7}")
        for name, left_sql, state, ours_argv, cpp_argv in daemons:
            times = {"ours": [], "cpp": []}
            states = {}
            for r in range(args.rounds):
                order = ["cpp", "ours"] if r % 2 == 0 else ["ours", "cpp"]
                for who in order:
                    argv = ours_argv if who == "ours" else cpp_argv
                    if not argv:
                        continue
                    restore_to(state)
                    times[who].append(timed_passes(argv, env, db, left_sql, cwd))
                    states[who] = end_state(db)
            ours = args.n / statistics.median(times["ours"])
            if times["cpp"]:
                cpp = args.n / statistics.median(times["cpp"])
                print(f"{name:<42} {cpp:>8.0f}/s {ours:>8.0f}/s {ours / cpp:>6.2f}x")
                differ = same_state(states["cpp"], states["ours"])
                print(f"{'  same end state as C++':<42} "
                      + ("yes" if not differ else f"NO: {', '.join(differ)}"))
            else:
                print(f"{name:<42} {'-':>10} {ours:>8.0f}/s   (set ${ENV_DAEMONS} for C++)")
    finally:
        project.drop()
        shutil.rmtree(base, ignore_errors=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2000, help="workunits (default 2000)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (medians)")
    parser.add_argument("--floor", action="store_true",
                        help="also compare with the daemons' own SQL replayed bare")
    parser.add_argument("--repeats", type=int, default=2, help="--floor: best of N runs")
    args = parser.parse_args()
    workload(args)
    if args.floor:
        floor(args)
    return 0


def floor(args) -> int:
    base = tempfile.mkdtemp(prefix="bench_daemons_")
    project = make_project(os.path.join(base, "proj"), f"bench_daemons_{os.getpid()}")
    try:
        app_id = add_app(project, "benchapp")
        platform = add_platform(project)
        add_app_version(project, app_id, platform, version_num=100)
        av = add_app_version(project, app_id, platform, version_num=200)
        team = add_team(project, "bench team")
        users = [add_user(project, f"u{i}@example.org", teamid=team if i % 2 else 0)
                 for i in range(20)]
        hosts = [add_host(project, u) for u in users]
        print(f"bench_daemons: {args.n} workunits, MariaDB {project.db.query_one('SELECT version() v')['v']}")
        t = time.perf_counter()
        bulk_ready_workunits(project, app_id, args.n, quorum=1, host_ids=hosts,
                             for_assimilation=True, prefix="asm", app_version_id=av)
        bulk_ready_workunits(project, app_id, args.n, quorum=2, host_ids=hosts, prefix="val",
                             app_version_id=av)
        print(f"(setup {time.perf_counter() - t:.1f} s)")
        measure("assimilator (no-op handler)", NoOpAssimilator, project, args.n,
                "SELECT count(*) n FROM workunit WHERE assimilate_state=2 AND name LIKE 'asm%'",
                args.repeats)
        measure("validator (bitwise, quorum 2)", BitwiseValidator, project, args.n,
                "SELECT count(*) n FROM workunit WHERE canonical_resultid>0 AND name LIKE 'val%' "
                "AND need_validate=0", args.repeats)
    finally:
        project.drop()
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
