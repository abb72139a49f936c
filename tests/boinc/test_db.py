"""The database layer against a real MariaDB: reconnect once, then raise."""

import logging

import pytest

from boinc_pymw.boinc import Database, DatabaseError


def _kill(project, db):
    conn_id = db.query_one("SELECT CONNECTION_ID() AS id")["id"]
    killer = Database.from_config(project.config)
    try:
        killer.execute(f"KILL {int(conn_id)}")
    finally:
        killer.close()


def test_lost_connection_is_reopened_once_and_logged(boinc_project, caplog):
    db = boinc_project.db
    db.insert("platform", {"create_time": 1, "name": "p1", "user_friendly_name": "P1"})
    _kill(boinc_project, db)
    with caplog.at_level(logging.WARNING, logger="boinc_pymw.db"):
        assert db.query_one("SELECT name FROM platform") == {"name": "p1"}
    assert any("reconnecting once" in r.getMessage() for r in caplog.records)


def test_second_failure_raises(boinc_project):
    db = boinc_project.db
    db.query("SELECT 1")
    _kill(boinc_project, db)
    db.port = 1                       # the reconnect goes nowhere
    with pytest.raises(DatabaseError, match="cannot connect"):
        db.query("SELECT 1")


def test_transaction_rolls_back_everything(boinc_project):
    db = boinc_project.db
    with pytest.raises(DatabaseError):
        with db.transaction():
            db.insert("platform", {"create_time": 1, "name": "a", "user_friendly_name": "A"})
            db.insert("platform", {"create_time": 1, "name": "a", "user_friendly_name": "A"})
    assert db.query("SELECT * FROM platform") == []


def test_parameters_are_never_sql(boinc_project):
    db = boinc_project.db
    evil = "x'); DROP TABLE platform; --"
    db.insert("platform", {"create_time": 1, "name": evil, "user_friendly_name": "E"})
    assert db.query_one("SELECT name FROM platform WHERE name=%s", (evil,)) == {"name": evil}
