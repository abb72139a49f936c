"""Replicas of a task that raised, run by the real worker in different places,
validate as matching: the error record goes back to the Master instead of the
workunit failing for want of a quorum."""

from __future__ import annotations

import json

import pytest

from boinc_pymw.local.simulate import run_to_validation
from boinc_pymw.boinc.states import ValidateState
from boinc_pymw.daemons.bitwise_validator import BitwiseValidator
from boinc_pymw.daemons.numeric_validator import NumericValidator

from runtime.conftest import failing_replicas  # tests/runtime (pytest puts tests/ on sys.path)
from .conftest import run_daemon


@pytest.mark.parametrize("validator", [BitwiseValidator, NumericValidator])
def test_failing_task_replicas_reach_a_quorum(world, tmp_path, validator):
    outputs = failing_replicas(tmp_path)
    assert json.loads(outputs[0])["ok"] is False
    db = world.db
    wu_id = run_to_validation(world.project, world.app_id, world.hosts[:3],
                              [[o] for o in outputs[:3]], "wu_failing_task", min_quorum=3,
                              app_version_id=world.av_id)
    assert run_daemon(validator, world.project) == 0
    rows = db.query("SELECT * FROM result WHERE workunitid=%s ORDER BY id", (wu_id,))
    assert [r["validate_state"] for r in rows] == [ValidateState.VALID] * 3
    wu = db.query_one("SELECT * FROM workunit WHERE id=%s", (wu_id,))
    assert wu["canonical_resultid"] == rows[0]["id"]
    assert wu["assimilate_state"] == 1
