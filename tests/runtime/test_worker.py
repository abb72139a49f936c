"""boinc_pymw.worker under an ordinary Python (what multicore/HTCondor run)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from boinc_pymw.errors import TaskError
from boinc_pymw.worker import decode_output, encode_task
from boinc_pymw.worker.codec import JobFormatError

from .conftest import HERE, write_job


def module_level(x):
    return x


def test_encode_task_names_importable_functions():
    assert encode_task(module_level, (1,), {"y": [2]}) == {
        "function": f"{__name__}:module_level", "args": [1], "kwargs": {"y": [2]}}
    assert encode_task("pkg.mod:fn", [1]) == {"function": "pkg.mod:fn", "args": [1], "kwargs": {}}


@pytest.mark.parametrize("bad", [lambda x: x, "no_colon", ":fn", "mod:"])
def test_encode_task_rejects_what_a_worker_cannot_import(bad):
    with pytest.raises((TypeError, JobFormatError)):
        encode_task(bad, ())


def test_encode_task_rejects_closures_and_non_json_arguments():
    def inner(x):
        return x

    with pytest.raises(TypeError, match="closure"):
        encode_task(inner, ())
    with pytest.raises(TypeError, match="JSON"):
        encode_task(module_level, ({1, 2},))


def test_decode_output_values_and_errors():
    assert decode_output({"ok": True, "value": [1, 2]}) == [1, 2]
    with pytest.raises(KeyError) as info:
        decode_output({"ok": False, "error": {"type": "KeyError", "message": "k", "traceback": "TB"}})
    assert info.value.__cause__.tb == "TB"
    with pytest.raises(TaskError) as info:
        decode_output({"ok": False, "error": {"type": "mymod.Custom", "message": "m",
                                              "traceback": "TB2"}})
    assert info.value.type == "mymod.Custom" and info.value.remote_traceback == "TB2"
    with pytest.raises(TaskError):  # a name that is not an exception is never instantiated
        decode_output({"ok": False, "error": {"type": "print", "message": "m"}})
    with pytest.raises(JobFormatError):
        decode_output({"value": 1})


def _worker(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-m", "boinc_pymw.worker",
                           "--code", str(HERE / "app_code"), *args],
                          cwd=tmp_path, capture_output=True, text=True, env=env, timeout=60)


def test_worker_writes_value_and_task_errors(tmp_path):
    write_job(tmp_path / "input.json", "pymw_runtime_tasks:add", "a", b="b")
    proc = _worker(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "output.json").read_text()) == {"ok": True, "value": "ab"}

    write_job(tmp_path / "job2.json", "pymw_runtime_tasks:fail", "boom")
    proc = _worker(tmp_path, "--input", "job2.json", "--output", "out2.json")
    assert proc.returncode == 0, proc.stderr
    with pytest.raises(ValueError, match="boom"):
        decode_output(json.loads((tmp_path / "out2.json").read_text()))
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("job, message", [
    (None, "does not exist"),
    ("{not json", "is not valid JSON"),
    ({"args": []}, "no \"function\""),
    ({"function": "pymw_runtime_tasks:add", "args": {}}, "\"args\" must be a list"),
    ({"function": "no_such_module_xyz:f"}, "cannot import task function no_such_module_xyz:f"),
    ({"function": "pymw_runtime_tasks:not_json"}, "not JSON data"),
])
def test_worker_runtime_failures(tmp_path, job, message):
    if job is not None:
        text = job if isinstance(job, str) else json.dumps(job)
        (tmp_path / "input.json").write_text(text)
    proc = _worker(tmp_path)
    assert proc.returncode != 0
    assert message in proc.stderr
    assert not (tmp_path / "output.json").exists()


def test_worker_never_imports_from_the_workunit(tmp_path):
    """A module sitting in the slot next to input.json is not importable."""
    (tmp_path / "evil.py").write_text("def f():\n    return 'workunit code ran'\n")
    write_job(tmp_path / "input.json", "evil:f")
    proc = _worker(tmp_path)
    assert proc.returncode != 0
    assert "cannot import task function evil:f" in proc.stderr


def test_worker_bad_checkpoint_setting_is_a_runtime_failure(tmp_path):
    write_job(tmp_path / "input.json", "pymw_runtime_tasks:add", 1, 2)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["BOINC_PYMW_CHECKPOINT_INTERVAL"] = "often"
    proc = subprocess.run([sys.executable, "-m", "boinc_pymw.worker", "--code", str(HERE / "app_code")],
                          cwd=tmp_path, capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 1
    assert "boinc_pymw.worker: error: BOINC_PYMW_CHECKPOINT_INTERVAL must be a number" in proc.stderr
