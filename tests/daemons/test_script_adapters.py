"""script_validator / script_assimilator compatible adapters with real scripts in bin/."""

from __future__ import annotations

import os

import pytest

from boinc_pymw.local.simulate import run_to_validation
from boinc_pymw.boinc.states import Outcome, ValidateState
from boinc_pymw.daemons.script_adapters import ScriptAssimilator, ScriptValidator

from .conftest import run_daemon


def script(project, name, body):
    path = os.path.join(project.path, "bin", name)
    with open(path, "w") as f:
        f.write("#!/bin/sh\n" + body)
    os.chmod(path, 0o755)
    return path


def results_of(db, wu_id):
    return db.query("SELECT * FROM result WHERE workunitid=%s ORDER BY id", (wu_id,))


def test_script_validator_init_and_compare(world, tmp_path):
    p = world.project
    calls = tmp_path / "calls"
    # init: "bad" content is invalid, "later" is transient (exit 3); compare with cmp
    script(p, "check_init", f'echo "init $*" >> {calls}\n'
           'grep -q bad "$1" && exit 1\ngrep -q later "$1" && exit 3\nexit 0\n')
    script(p, "check_same", f'echo "cmp $*" >> {calls}\nexec cmp -s "$1" "$2"\n')
    good = run_to_validation(p, world.app_id, world.hosts[:3], [[b"x"], [b"bad"], [b"x"]],
                             "good", min_quorum=2, app_version_id=world.av_id)
    assert run_daemon(ScriptValidator, p, "--init_script", "check_init files result_id",
                      "--compare_script", "check_same files files2") == 0
    rs = results_of(world.db, good)
    assert [(r["outcome"], r["validate_state"]) for r in rs] == [
        (Outcome.SUCCESS, ValidateState.VALID), (Outcome.VALIDATE_ERROR, ValidateState.INVALID),
        (Outcome.SUCCESS, ValidateState.VALID)]
    lines = calls.read_text().splitlines()
    init_lines = [line for line in lines if line.startswith("init ")]
    assert len(init_lines) == 3 and all(line.split()[-1].isdigit() for line in init_lines)
    assert any(line.startswith("cmp ") for line in lines)

    later = run_to_validation(p, world.app_id, world.hosts[:2], [[b"later"], [b"later"]],
                              "later", min_quorum=2, target_nresults=3,
                              app_version_id=world.av_id)
    run_daemon(ScriptValidator, p, "--init_script", "check_init files")
    assert all(r["validate_state"] != ValidateState.INVALID for r in results_of(world.db, later))


def test_script_assimilator_tokens_and_errors(world, tmp_path):
    from boinc_pymw.daemons.bitwise_validator import BitwiseValidator

    p = world.project
    out = tmp_path / "asm"
    script(p, "store_it", f'echo "$@" >> {out}\n')
    ok = run_to_validation(p, world.app_id, world.hosts[:1], [[b"r"]], "okwu", min_quorum=1,
                           app_version_id=world.av_id)
    bad = run_to_validation(p, world.app_id, world.hosts[:2], [None, None], "badwu",
                            min_quorum=2, max_error_results=1)
    run_daemon(BitwiseValidator, p)
    assert run_daemon(ScriptAssimilator, p, "--script", "store_it wu_id wu_name files") == 0
    lines = sorted(out.read_text().splitlines())
    assert lines[0].startswith("--error 2 badwu ")
    wu_id, wu_name, path = lines[1].split()
    assert (int(wu_id), wu_name) == (ok, "okwu")
    assert open(path, "rb").read() == b"r"
    states = [r["assimilate_state"] for r in world.db.query("SELECT * FROM workunit ORDER BY id")]
    assert states == [2, 2]
    assert bad


def test_script_assimilator_failure_exits_and_keeps_workunit(world):
    p = world.project
    script(p, "fails", "exit 4\n")
    wu = run_to_validation(p, world.app_id, world.hosts[:2], [None, None], "w", min_quorum=2,
                           max_error_results=1)
    assert run_daemon(ScriptAssimilator, p, "--script", "fails") == 1
    assert world.db.query_one("SELECT assimilate_state FROM workunit WHERE id=%s",
                              (wu,))["assimilate_state"] == 1


def test_unknown_token_rejected(world):
    with pytest.raises(SystemExit):
        run_daemon(ScriptAssimilator, world.project, "--script", "x nonsense")
    with pytest.raises(SystemExit):
        run_daemon(ScriptValidator, world.project, "--init_script", "../evil files")
