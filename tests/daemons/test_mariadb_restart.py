"""The database server restarts while daemons run (a private MariaDB instance on its
own port and data directory, so other tests' server is never touched): the daemons
reconnect and finish, or exit non-zero for bin/start --cron when it stays away; no
workunit is lost, stuck or credited twice."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time

import pytest

from boinc_pymw.boinc.db import Database, DatabaseError
from boinc_pymw.local.simulate import bulk_ready_workunits
from boinc_pymw.boinc.testing import make_project

from .conftest import make_world, read_marks, start_daemon_process
from .test_robustness import assert_credit_consistent, counts, marks_count


class PrivateMariaDB:
    """mariadbd on 127.0.0.1:<free port> with a throw-away datadir; root, no password."""

    def __init__(self, base):
        self.base = str(base)
        self.datadir = os.path.join(self.base, "data")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.proc = None
        installer = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
        subprocess.run([installer, "--no-defaults", f"--datadir={self.datadir}", "--user=root",
                        "--auth-root-authentication-method=normal", "--skip-test-db"],
                       check=True, capture_output=True)

    def start(self):
        self.proc = subprocess.Popen(
            ["/usr/sbin/mariadbd", "--no-defaults", f"--datadir={self.datadir}",
             f"--port={self.port}", "--bind-address=127.0.0.1",
             f"--socket={os.path.join(self.base, 'sock')}", "--user=root",
             "--skip-grant-tables", "--skip-name-resolve", "--innodb-buffer-pool-size=64M",
             f"--log-error={os.path.join(self.base, 'error.log')}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                Database("mysql", "127.0.0.1", "root", "", self.port, connect_timeout=2) \
                    .connect().close()
                return
            except DatabaseError:
                time.sleep(0.1)
        raise RuntimeError("private mariadbd did not come up: "
                           + open(os.path.join(self.base, "error.log")).read()[-2000:])

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)
        self.proc = None


@pytest.fixture(scope="module")
def private_mariadb(tmp_path_factory):
    server = PrivateMariaDB(tmp_path_factory.mktemp("mariadb"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def private_world(private_mariadb, tmp_path):
    project = make_project(tmp_path / "proj", f"restart_{os.getpid()}_{time.monotonic_ns()}",
                           db_host=f"127.0.0.1:{private_mariadb.port}")
    yield make_world(project)
    if private_mariadb.proc is None:
        private_mariadb.start()
    project.drop()


def wait_until(predicate, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except DatabaseError:
            pass
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


@pytest.mark.parametrize("kind", ["assimilator", "validator"])
def test_daemon_rides_out_a_server_restart(private_mariadb, private_world, tmp_path, kind):
    w = private_world
    n = 800
    if kind == "assimilator":
        bulk_ready_workunits(w.project, w.app_id, n, quorum=1, host_ids=w.hosts,
                             for_assimilation=True, prefix="r")
        done_sql, expected_marks = "SELECT count(*) n FROM workunit WHERE assimilate_state=2", n
    else:
        bulk_ready_workunits(w.project, w.app_id, n, quorum=2, host_ids=w.hosts, prefix="r")
        done_sql, expected_marks = "SELECT count(*) n FROM workunit WHERE need_validate=0", 2 * n
    marks = tmp_path / "marks"
    proc = start_daemon_process(w.project, kind, ["--sleep_interval", "1"], marks,
                                HANDLER_DELAY=0.002)
    try:
        wait_until(lambda: marks_count(marks) >= expected_marks // 4)
        private_mariadb.stop()
        assert marks_count(marks) < expected_marks      # the restart hits a busy daemon
        time.sleep(2)
        private_mariadb.start()
        w.db.close()
        wait_until(lambda: counts(w.db, done_sql) == n)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    handled = read_marks(marks)
    assert len(handled) == expected_marks               # nothing lost
    log = open(os.path.join(w.project.path, f"log_{os.uname().nodename.split('.')[0]}",
                            f"{kind}.log")).read()
    assert "DB connection lost" in log and "database connection restored" in log
    if kind == "validator":
        assert counts(w.db, "SELECT count(*) n FROM result WHERE validate_state<>1") == 0
        assert_credit_consistent(w.db)


def test_daemon_exits_for_cron_when_server_stays_away(private_mariadb, private_world, tmp_path):
    w = private_world
    bulk_ready_workunits(w.project, w.app_id, 300, quorum=1, host_ids=w.hosts,
                         for_assimilation=True, prefix="c")
    marks = tmp_path / "marks"
    proc = start_daemon_process(w.project, "assimilator", ["--sleep_interval", "1"], marks,
                                HANDLER_DELAY=0.01, DB_RETRY=2)
    try:
        wait_until(lambda: marks_count(marks) >= 20)
        private_mariadb.stop()
        assert proc.wait(timeout=60) == 1               # bin/start --cron restarts it
    finally:
        if proc.poll() is None:
            proc.kill()
    private_mariadb.start()
    w.db.close()
    proc = start_daemon_process(w.project, "assimilator", ["--one_pass"], marks)
    assert proc.wait(timeout=120) == 0
    assert counts(w.db, "SELECT count(*) n FROM workunit WHERE assimilate_state<>2") == 0
    assert sorted(read_marks(marks)) == sorted(f"c_{i}" for i in range(300))
