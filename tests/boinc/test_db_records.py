"""Typed rows read back from a real BOINC-schema database."""

from boinc_pymw.boinc.db import App, Host, Result, Workunit
from boinc_pymw.boinc.states import (AssimilateState, Outcome, ServerState, ValidateState,
                                     WuError)
from boinc_pymw.boinc.testing import add_app, add_host, add_user
from boinc_pymw.templates import write_app_templates


def test_records_from_rows(boinc_project):
    app_id = add_app(boinc_project, "rec")
    write_app_templates(boinc_project, "rec", inputs=["in"])
    wu_id = boinc_project.create_work("rec", [("in.bin", b"x")], name="rec_wu")
    db = boinc_project.db
    db.execute("UPDATE workunit SET assimilate_state=1, error_mask=36 WHERE id=%s", (wu_id,))
    wu = Workunit.from_row(db.query_one("SELECT * FROM workunit WHERE id=%s", (wu_id,)))
    assert wu.id == wu_id and wu.appid == app_id and wu.name == "rec_wu"
    assert isinstance(wu.xml_doc, str) and "<name>in.bin</name>" in wu.xml_doc
    assert wu.assimilate_state is AssimilateState.READY
    assert wu.error_mask == WuError.NO_CANONICAL_RESULT | WuError.TOO_MANY_SUCCESS_RESULTS
    assert App.from_row(db.query_one("SELECT * FROM app WHERE id=%s", (app_id,))).name == "rec"
    host = Host.from_row(db.query_one("SELECT * FROM host WHERE id=%s",
                                      (add_host(boinc_project, add_user(boinc_project, "r@x")),)))
    assert host.p_fpops > 0


def test_unknown_state_values_stay_integers():
    r = Result.from_row({"id": 3, "server_state": 5, "outcome": 99, "validate_state": 1,
                         "stderr_out": b"<stderr_txt/>", "not_a_column": 1})
    assert r.server_state is ServerState.OVER and r.validate_state is ValidateState.VALID
    assert r.outcome == 99 and not isinstance(r.outcome, Outcome)
    assert r.stderr_out == "<stderr_txt/>"
