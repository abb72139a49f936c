"""How fast our assimilator and validator are next to the database work they do.

For 10,000 workunits (real MariaDB at 127.0.0.1:3306, a throw-away project):

* assimilation: ``Assimilator`` with a no-op handler, one pass;
* validation: ``BitwiseValidator`` (quorum 2, MD5 of each output file), one pass;
* the floor for each: the SAME SQL statements the daemon issued (recorded in a
  separate run, then replayed as bare statements in one loop with the same
  commits) -- the database work without our Python around it.

Daemon and floor runs alternate on the same restored data, best of
``--repeats``; prints workunits/s for each and the ratio daemon time / floor
time (target: within 2x). Commit latency (fsync) dominates both, so run it
on a quiet machine. Usage: ``.venv/bin/python benchmarks/bench_daemons.py [-n 10000]``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=10000, help="workunits (default 10000)")
    parser.add_argument("--repeats", type=int, default=2, help="best of N alternating runs")
    args = parser.parse_args()
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
