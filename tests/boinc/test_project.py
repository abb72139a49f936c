"""make_project lays out a usable project and a BOINC-shaped database."""

import os

import pytest

from boinc_pymw.boinc import DatabaseError, Project
from boinc_pymw.boinc.testing import (add_app, add_host, add_platform, add_team, add_user,
                                      make_project, schema_statements, short_hostname,
                                      unique_db_name)

BOINC_TABLES = {"platform", "app", "app_version", "workunit", "result", "batch", "host",
                "user", "team", "host_app_version", "assignment", "credit_user",
                "credit_team", "msg_from_host", "msg_to_host", "user_submit", "user_submit_app"}


def test_layout_and_config(boinc_project):
    p = boinc_project
    for d in ("download", "upload", "keys", "cgi-bin", "bin", "templates",
              f"log_{short_hostname()}", f"tmp_{short_hostname()}"):
        assert os.path.isdir(os.path.join(p.path, d)), d
    # A fresh Project() on the same directory sees the same config.
    again = Project(p.path)
    assert again.config.db_name == p.config.db_name
    assert again.config.uldl_dir_fanout == 1024 and again.config.cache_md5_info


def test_schema_tables_and_boinc_indexes(boinc_project):
    db = boinc_project.db
    tables = {r["TABLE_NAME"] for r in db.query(
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s",
        (boinc_project.config.db_name,))}
    assert BOINC_TABLES <= tables
    indexes = {(r["TABLE_NAME"], r["INDEX_NAME"]) for r in db.query(
        "SELECT TABLE_NAME, INDEX_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA=%s",
        (boinc_project.config.db_name,))}
    for needed in [("result", "ind_res_st"), ("workunit", "wu_val"), ("workunit", "wu_assim"),
                   ("workunit", "wu_timeout"), ("result", "res_wuid"),
                   ("host_app_version", "hap")]:
        assert needed in indexes


def test_not_null_columns_are_enforced(boinc_project):
    # BOINC's columns have no defaults: a row missing one is rejected.
    with pytest.raises(DatabaseError):
        boinc_project.db.insert("workunit", {"name": "incomplete", "create_time": 1})


def test_row_helpers_and_unique_names(boinc_project):
    app_id = add_app(boinc_project, "myapp")
    add_platform(boinc_project)
    team = add_team(boinc_project, "Team A")
    user = add_user(boinc_project, "a@example.org", teamid=team)
    host = add_host(boinc_project, user, p_fpops=2e9)
    assert boinc_project.app("myapp")["id"] == app_id
    assert boinc_project.db.query_one("SELECT userid, p_fpops FROM host WHERE id=%s",
                                      (host,)) == {"userid": user, "p_fpops": 2e9}
    with pytest.raises(DatabaseError):
        add_app(boinc_project, "myapp")
    with pytest.raises(ValueError, match="no column"):
        add_app(boinc_project, "other", no_such_column=1)


def test_make_project_recreates_database(mariadb, tmp_path):
    name = unique_db_name()
    p = make_project(tmp_path / "p", name, uldl_dir_fanout=7)
    try:
        add_app(p, "a")
        p = make_project(tmp_path / "p", name, uldl_dir_fanout=7)   # drop-and-recreate
        assert p.db.query("SELECT * FROM app") == []
        assert p.config.uldl_dir_fanout == 7
    finally:
        p.drop()
    with pytest.raises(DatabaseError, match="cannot connect"):
        Project(p.path).db.query("SELECT 1")


def test_bad_database_name_is_refused(mariadb, tmp_path):
    with pytest.raises(DatabaseError, match="database name"):
        make_project(tmp_path / "p", "x`; drop database mysql; --")


def test_schema_file_splits_into_statements():
    statements = schema_statements()
    assert sum(s.lower().startswith("create table") for s in statements) == len(BOINC_TABLES)


def test_merged_schema_equals_boinc_layout(mariadb):
    """The fast path (indexes inside CREATE TABLE) builds exactly the tables that
    schema.sql's CREATE + ALTER statements build."""
    from boinc_pymw.boinc.testing import _server, drop_database, merged_schema_statements

    names = unique_db_name(), unique_db_name()
    server = _server("127.0.0.1", "root", "")
    try:
        for name, statements in zip(names, (schema_statements(), merged_schema_statements())):
            server.execute(f"CREATE DATABASE `{name}`")
            server.execute(f"USE `{name}`")
            for statement in statements:
                server.execute(statement)
        layouts = []
        for name in names:
            server.execute(f"USE `{name}`")
            layouts.append({t: server.query_one(f"SHOW CREATE TABLE `{t}`")["Create Table"]
                            for t in sorted(BOINC_TABLES)})
        assert layouts[0] == layouts[1]
    finally:
        server.close()
        for name in names:
            drop_database(name)
