"""boinc_pymw.checkpoint / restore outside BOINC (interval policy) and with a policy."""

from __future__ import annotations

import json

import pytest

import boinc_pymw
from boinc_pymw import checkpoint as checkpoint_fn
from boinc_pymw.checkpoint import (CHECKPOINT_FILE, BoincPolicy, CheckpointError, IntervalPolicy,
                                   checkpoint, restore, task_context)


def test_restore_default_then_saved_state(tmp_path):
    with task_context(tmp_path, policy=IntervalPolicy(0)):
        assert restore() is None and restore(default={"i": 0}) == {"i": 0}
        assert checkpoint({"i": 3, "xs": [1.5, "a"]}) is True
        assert restore() == {"i": 3, "xs": [1.5, "a"]}
    assert json.loads((tmp_path / CHECKPOINT_FILE).read_text())["state"]["i"] == 3
    assert [p.name for p in tmp_path.iterdir()] == [CHECKPOINT_FILE]  # no temp files left


def test_interval_policy_rate_limits_unless_forced(tmp_path):
    with task_context(tmp_path, policy=IntervalPolicy(3600)):
        assert checkpoint(1) is False
        assert restore() is None
        assert checkpoint(2, force=True) is True
        assert restore() == 2


def test_package_level_names_work_whatever_was_imported_first(tmp_path):
    import boinc_pymw.checkpoint  # noqa: F401  sets the package attribute to the module

    with task_context(tmp_path, policy=IntervalPolicy(0)):
        assert boinc_pymw.checkpoint({"k": 1}) is True
        assert checkpoint_fn({"k": 2}) is True
        assert boinc_pymw.restore() == {"k": 2}


def test_bad_state_and_corrupt_file_are_clear_errors(tmp_path):
    with task_context(tmp_path, policy=IntervalPolicy(0)):
        checkpoint({"good": True})
        with pytest.raises(CheckpointError, match="JSON"):
            checkpoint({"bad": {1, 2}})
        assert restore() == {"good": True}  # the old checkpoint survives
        (tmp_path / CHECKPOINT_FILE).write_text("{broken")
        with pytest.raises(CheckpointError, match="not a boinc_pymw checkpoint"):
            restore()


def test_contexts_nest_and_separate_tasks(tmp_path):
    with task_context(tmp_path / "a", policy=IntervalPolicy(0)):
        checkpoint("A")
        with task_context(tmp_path / "b", policy=IntervalPolicy(0)):
            assert restore() is None
            checkpoint("B")
        assert restore() == "A"


class FakeClient:
    """Records the BOINC calls a policy makes (stands in for the `boinc` module's
    bookkeeping only; the real module is exercised in test_boinc_module/test_slot)."""

    def __init__(self, due):
        self.due, self.calls = due, []

    def time_to_checkpoint(self):
        self.calls.append("time_to_checkpoint")
        return self.due

    def checkpoint_completed(self):
        self.calls.append("checkpoint_completed")

    def fraction_done(self, x):
        self.calls.append(("fraction_done", x))


def test_boinc_policy_asks_the_client_and_closes_the_critical_section(tmp_path):
    client = FakeClient(due=False)
    with task_context(tmp_path, policy=BoincPolicy(client)):
        assert checkpoint(1) is False
        client.due = True
        assert checkpoint(2) is True
        boinc_pymw.checkpoint.progress(2.0)
    assert client.calls == ["time_to_checkpoint", "time_to_checkpoint", "checkpoint_completed",
                            ("fraction_done", 1.0)]


def test_interval_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("BOINC_PYMW_CHECKPOINT_INTERVAL", "soon")
    with pytest.raises(CheckpointError, match="number of seconds"):
        with task_context(tmp_path):
            pass
    monkeypatch.setenv("BOINC_PYMW_CHECKPOINT_INTERVAL", "0")
    with task_context(tmp_path):
        assert checkpoint("x") is True
