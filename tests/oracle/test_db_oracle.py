"""BOINC's DB_WORKUNIT / DB_RESULT classes write and read rows in our schema,
and a workunit from libsched's create_work equals one from ours."""

import os
import time

import pytest

from boinc_pymw.boinc.testing import add_app
from boinc_pymw.boinc.states import Outcome, ServerState, ValidateState
from boinc_pymw.templates import InputFile, OutputFile, write_app_templates
from oracle import parse_fields, run_oracle

WU_VALUES = {
    "create_time": 1700000000, "appid": 3, "name": "oracle_wu", "batch": 9,
    "rsc_fpops_est": 1.5e12, "rsc_fpops_bound": 3e13, "rsc_memory_bound": 2.5e8,
    "rsc_disk_bound": 7e8, "rsc_bandwidth_bound": 1234.5, "transition_time": 1700000100,
    "delay_bound": 4321, "min_quorum": 2, "target_nresults": 3, "max_error_results": 4,
    "max_total_results": 9, "max_success_results": 5, "priority": 7, "opaque": 42.25,
    "hr_class": 1, "size_class": 2, "keywords": "1 5", "app_version_num": 711,
    "result_template_file": "templates/x_out", "canonical_resultid": 77,
    "canonical_credit": 12.5, "need_validate": 1, "error_mask": 16, "assimilate_state": 1,
    "file_delete_state": 2, "transitioner_flags": 2,
    "xml_doc": "<file_info>\n<name>a</name>\n</file_info>\n<workunit>\n</workunit>",
}

RESULT_VALUES = {
    "create_time": 1700000000, "workunitid": 5, "server_state": int(ServerState.OVER),
    "outcome": int(Outcome.SUCCESS), "client_state": 5, "hostid": 11, "userid": 12,
    "report_deadline": 1700086400, "sent_time": 1700000050, "received_time": 1700000500,
    "name": "oracle_wu_0", "cpu_time": 101.5, "xml_doc_in": "<file_info>in</file_info>",
    "xml_doc_out": "<file_info>out</file_info>", "stderr_out": "<stderr_txt>hi</stderr_txt>",
    "batch": 9, "file_delete_state": 1, "validate_state": int(ValidateState.VALID),
    "claimed_credit": 3.5, "granted_credit": 4.5, "opaque": 2.0, "random": 123456,
    "app_version_num": 711, "appid": 3, "exit_status": -3, "teamid": 4, "priority": 2,
    "elapsed_time": 99.25, "flops_estimate": 2e9, "app_version_id": 8, "runtime_outlier": 1,
    "size_class": 1, "peak_working_set_size": 1e8, "peak_swap_size": 2e8,
    "peak_disk_usage": 3e8,
}

IGNORED = {"id", "name", "create_time", "transition_time", "mod_time"}


def _equal(ours, theirs: str) -> bool:
    if isinstance(ours, bytes):
        ours = ours.decode()
    if isinstance(ours, float):
        return float(theirs) == ours
    return str(ours) == theirs


def _result_row(**overrides):
    row = dict(RESULT_VALUES)
    row.update(overrides)
    return row


def test_boinc_inserts_workunit_we_read(oracle_exe, boinc_project):
    out = parse_fields(run_oracle(oracle_exe, "insert_wu", boinc_project.path,
                                  *(f"{k}={v}" for k, v in WU_VALUES.items())))
    row = boinc_project.db.query_one("SELECT * FROM workunit WHERE id=%s", (int(out["id"]),))
    for key, value in WU_VALUES.items():
        got = row[key].decode() if isinstance(row[key], bytes) else row[key]
        assert got == value, key


def test_boinc_reads_workunit_we_insert(oracle_exe, boinc_project):
    wu_id = boinc_project.db.insert("workunit", dict(
        WU_VALUES, fileset_id=0, app_version_id=0))
    theirs = parse_fields(run_oracle(oracle_exe, "wu_roundtrip", boinc_project.path, wu_id))
    for key, value in WU_VALUES.items():
        assert _equal(value, theirs[key]), (key, value, theirs[key])


def test_boinc_inserts_result_we_read(oracle_exe, boinc_project):
    out = parse_fields(run_oracle(oracle_exe, "insert_result", boinc_project.path,
                                  *(f"{k}={v}" for k, v in RESULT_VALUES.items())))
    row = boinc_project.db.query_one("SELECT * FROM result WHERE id=%s", (int(out["id"]),))
    for key, value in RESULT_VALUES.items():
        got = row[key].decode() if isinstance(row[key], bytes) else row[key]
        assert got == value, key


def test_boinc_reads_result_we_insert(oracle_exe, boinc_project):
    result_id = boinc_project.db.insert("result", _result_row())
    theirs = parse_fields(run_oracle(oracle_exe, "result_roundtrip", boinc_project.path,
                                     result_id))
    for key, value in RESULT_VALUES.items():
        assert _equal(value, theirs[key]), (key, value, theirs[key])


def _files(project, tag, n=2):
    names = []
    for i in range(n):
        name = f"{tag}_{i}.bin"
        with open(os.path.join(project.download_dir, name), "wb") as f:
            f.write(os.urandom(100 + i))
        names.append(name)
    return names


@pytest.mark.parametrize("ours_first", [True, False], ids=["ours-first", "boinc-first"])
@pytest.mark.parametrize("fields", [
    {},
    {"min_quorum": 1, "target_nresults": 1, "max_error_results": 2, "max_total_results": 4,
     "max_success_results": 2, "rsc_fpops_est": 1e10, "delay_bound": 600, "priority": 3,
     "opaque": 8.0},
], ids=["defaults", "fields"])
def test_create_work_rows_match_libsched(oracle_exe, boinc_project, fields, ours_first):
    """Same files, template and fields: same row, ids, names and times aside."""
    app_id = add_app(boinc_project, "app")
    write_app_templates(boinc_project, "app",
                        inputs=[InputFile("in", copy_file=True), InputFile("aux", sticky=True)],
                        outputs=[OutputFile("out", optional=True)], rsc_memory_bound=3e8)
    template = os.path.join(boinc_project.templates_dir, "app_in")
    files = _files(boinc_project, "f")
    before = int(time.time())

    def boinc():
        out = run_oracle(oracle_exe, "create", boinc_project.path, "app", template,
                         "templates/app_out", "boinc", 1, 2,
                         *(f"{k}={v}" for k, v in fields.items()), "--", *files)
        return int(parse_fields(out)["id"])

    def ours():
        return boinc_project.create_work("app", files, "templates/app_in",
                                         "templates/app_out", name="ours", **fields)

    if ours_first:
        ours_id, theirs_id = ours(), boinc()
    else:
        theirs_id, ours_id = boinc(), ours()
    db = boinc_project.db
    theirs = db.query_one("SELECT * FROM workunit WHERE id=%s", (theirs_id,))
    ours = db.query_one("SELECT * FROM workunit WHERE id=%s", (ours_id,))
    for row in (theirs, ours):
        assert row["appid"] == app_id and row["rsc_memory_bound"] == 3e8
        assert before <= row["create_time"] <= row["transition_time"] <= int(time.time()) + 1
    assert {k: v for k, v in ours.items() if k not in IGNORED} == \
        {k: v for k, v in theirs.items() if k not in IGNORED}


def _ours_equal_theirs(ours: dict, theirs: dict):
    for key, value in ours.items():
        assert _equal(value, theirs[key]), (key, value, theirs[key])


def test_boinc_reads_our_other_rows(oracle_exe, boinc_project):
    """BOINC's DB classes parse `select *` rows by position: distinct values in the
    last columns of each table show that our column order is BOINC's."""
    from boinc_pymw.boinc.testing import add_host, add_platform, add_team, add_user

    p = boinc_project
    rows = {
        "platform": ({"name": "plat", "user_friendly_name": "Plat", "deprecated": 1},
                     lambda v: add_platform(p, **v)),
        "app": ({"name": "appx", "weight": 2.5, "target_nresults": 3, "min_avg_pfc": 1.5,
                 "homogeneous_app_version": 1, "non_cpu_intensive": 1,
                 "locality_scheduling": 2, "n_size_classes": 4, "fraction_done_exact": 1},
                lambda v: add_app(p, **v)),
        "team": ({"name": "Team T", "userid": 5, "nusers": 6, "total_credit": 7.5,
                  "expavg_credit": 8.5, "expavg_time": 9.5, "seti_id": 10, "ping_user": 11,
                  "ping_time": 12}, lambda v: add_team(p, **v)),
        "user": ({"email_addr": "e@x.org", "teamid": 3, "total_credit": 1.25,
                  "expavg_credit": 2.25, "expavg_time": 3.25, "donated": 1,
                  "login_token": "tok", "login_token_time": 4.5,
                  "previous_email_addr": "old@x.org", "email_addr_change_time": 5.5},
                 lambda v: add_user(p, **v)),
        "host": ({"userid": 4, "total_credit": 10.5, "expavg_credit": 11.5,
                  "expavg_time": 12.5, "p_fpops": 3e9, "avg_turnaround": 13.5,
                  "max_results_day": 14, "error_rate": 0.125, "product_name": "prod",
                  "gpu_active_frac": 0.25},
                 # (libsched 7.20's DB_HOST::db_parse stops there: p_ngpus and
                 # p_gpu_fpops, the last two columns, are written but never read back)
                 lambda v: add_host(p, **v)),
    }
    for table, (values, add) in rows.items():
        row_id = add(dict(values))
        theirs = parse_fields(run_oracle(oracle_exe, "row", table, p.path, row_id))
        _ours_equal_theirs(values, theirs)
    version = {"appid": 2, "version_num": 105, "platformid": 3, "plan_class": "mt",
               "pfc_n": 1.5, "pfc_avg": 2.5, "pfc_scale": 3.5, "expavg_credit": 4.5,
               "expavg_time": 5.5, "beta": 1}
    av_id = p.db.insert("app_version", dict(version, create_time=1, xml_doc="<x/>"))
    _ours_equal_theirs(version, parse_fields(run_oracle(oracle_exe, "row", "app_version",
                                                        p.path, av_id)))
    # (batch rows are not checked here: libsched 7.20's DB_BATCH reads nothing,
    # the batch table is PHP's business in that release.)
