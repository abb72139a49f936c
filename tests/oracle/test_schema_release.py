"""The shipped schema follows server 1.4.7's db/schema.sql (which Debian's libsched
7.20.5 shares) column for column where 1.4.7 differs from 1.6: facts read from
BOINC's tag server_release/1.4/1.4.7, checked on a database made from schema.sql."""

import pytest

EXPECTED = {   # (table, column): (COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT)
    ("batch", "name"): ("varchar(255)", "NO", None),
    ("batch", "description"): ("varchar(255)", "NO", None),
    ("user", "login_token"): ("char(32)", "NO", "''"),
    ("user", "login_token_time"): ("double", "NO", "0"),
    ("user", "previous_email_addr"): ("varchar(254)", "NO", "''"),
    ("user", "email_addr_change_time"): ("double", "NO", "0"),
    ("team", "total_credit"): ("double", "NO", "0"),
    ("team", "expavg_credit"): ("double", "NO", "0"),
    ("team", "seti_id"): ("int(11)", "NO", "0"),
    ("user_submit", "max_jobs_in_progress"): ("int(11)", "NO", None),
}
ABSENT = [("batch", "keywords"), ("host", "misc")]     # 1.6 adds them; 1.4.7 has neither


@pytest.fixture
def columns(boinc_project):
    rows = boinc_project.db.query(
        "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT "
        "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA=%s", (boinc_project.config.db_name,))
    return {(r["TABLE_NAME"], r["COLUMN_NAME"]): (r["COLUMN_TYPE"], r["IS_NULLABLE"],
                                                 r["COLUMN_DEFAULT"]) for r in rows}


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_columns_match_1_4_7(columns, key):
    assert columns[key] == EXPECTED[key]


@pytest.mark.parametrize("key", ABSENT)
def test_columns_1_4_7_does_not_have(columns, key):
    assert key not in columns


def test_the_schema_says_which_release_each_table_follows():
    from pathlib import Path

    import boinc_pymw.boinc as package

    text = (Path(package.__file__).parent / "schema.sql").read_text()
    for table in ("platform", "app", "app_version", "user", "team", "host", "workunit",
                  "result", "batch", "user_submit"):
        block = text[:text.index(f"create table {table} (")]
        assert "-- follows: " in block.rsplit("create table", 1)[-1], table

