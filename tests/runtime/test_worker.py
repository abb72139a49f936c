"""boinc_pymw.worker under an ordinary Python (what multicore/HTCondor run)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from boinc_pymw.errors import TaskError
from boinc_pymw.worker import decode_output, encode_task
from boinc_pymw.worker.codec import JobFormatError
from boinc_pymw.worker.error_record import PathScrubber, error_record

from .conftest import HERE, failing_replicas, run_worker, write_job


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
    ({"function": "no_such_module_xyz:f"}, "no_such_module_xyz:f is refused: it is not an entry point"),
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
    assert "evil:f is refused: it is not an entry point" in proc.stderr


def test_worker_bad_checkpoint_setting_is_a_runtime_failure(tmp_path):
    write_job(tmp_path / "input.json", "pymw_runtime_tasks:add", 1, 2)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["BOINC_PYMW_CHECKPOINT_INTERVAL"] = "often"
    proc = subprocess.run([sys.executable, "-m", "boinc_pymw.worker", "--code", str(HERE / "app_code")],
                          cwd=tmp_path, capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 1
    assert "boinc_pymw.worker: error: BOINC_PYMW_CHECKPOINT_INTERVAL must be a number" in proc.stderr


def test_task_error_record_is_the_same_on_every_host(tmp_path):
    """Replicas in other directories, with the code elsewhere (unpacked or zipped),
    write byte-identical error records, so a validator finds a quorum."""
    outputs = failing_replicas(tmp_path)
    assert len(set(outputs)) == 1, outputs
    text = outputs[0].decode()
    assert str(tmp_path) not in text and "/tmp" not in text
    error = json.loads(text)["error"]
    assert error["type"] == "RuntimeError"
    assert error["message"] == ("cannot parse '{bad' for <pymw_runtime_tasks.Widget object "
                                "at 0x...>; slot ., code pymw_runtime_tasks.py")
    tb = error["traceback"]
    # Still a traceback a human can read: the task's frames with their source, the
    # standard library's frames module-relative, the chained cause; not the worker's frame.
    assert re.search(r'File "pymw_runtime_tasks.py", line \d+, in fail_deep\n'
                     r'    raise RuntimeError', tb), tb
    assert re.search(r'File "json/decoder.py", line \d+, in raw_decode', tb), tb
    assert "json.decoder.JSONDecodeError: Expecting property name" in tb
    assert "The above exception was the direct cause of the following exception" in tb
    assert "runner.py" not in tb and "run_task" not in tb
    assert not re.search(r"0x[0-9a-fA-F]{4,}", tb)
    with pytest.raises(RuntimeError, match="^cannot parse"):
        decode_output(json.loads(text))


def test_scrubber_paths(tmp_path):
    code = tmp_path / "code.zip"
    slot = tmp_path / "slots" / "3"
    scrub = PathScrubber(cwd=str(slot), path_entries=[str(code), "", "/"])
    assert scrub.filename(f"{code}/pkg/mod.py") == "pkg/mod.py"
    assert scrub.filename(f"{slot}/made_here.py") == "made_here.py"
    assert scrub.filename("/elsewhere/deep/file.py") == "file.py"
    assert scrub.filename("<string>") == "<string>"
    assert scrub.filename(f"{code}x/mod.py") == "mod.py"  # a sibling, not inside the root
    assert scrub.text(f"No such file: '{slot}/data.txt' (in {slot}); {code}; {slot}0/x") == (
        f"No such file: 'data.txt' (in .); code.zip; {slot}0/x")
    assert scrub.text("<function f at 0x7f00aa11bb22> value at 0x1F") == (
        "<function f at 0x...> value at 0x1F")


def test_error_record_of_a_builtin_raising_has_no_frames():
    try:
        int("x")
    except ValueError as exc:
        record = error_record(exc, skip_frames=1)
    assert record == {"type": "ValueError", "message": "invalid literal for int() with base 10: 'x'",
                      "traceback": "ValueError: invalid literal for int() with base 10: 'x'\n"}


def test_error_record_when_str_of_the_exception_fails():
    class Odd(Exception):
        def __str__(self):
            raise RuntimeError("no")

    try:
        raise Odd()
    except Odd as exc:
        record = error_record(exc, skip_frames=1)
    assert record["message"] == "<exception str() failed: Odd>"
    assert record["type"].endswith("Odd")


def test_hard_crash_leaves_a_python_traceback_on_stderr(tmp_path):
    write_job(tmp_path / "input.json", "pymw_runtime_tasks:crash")
    proc = run_worker(tmp_path, HERE / "app_code")
    assert proc.returncode == -signal.SIGSEGV, proc.stderr
    assert "Fatal Python error: Segmentation fault" in proc.stderr
    assert re.search(r'File ".*pymw_runtime_tasks.py", line \d+ in crash', proc.stderr), proc.stderr
    assert not (tmp_path / "output.json").exists()


def _package(tmp_path: Path, source: str) -> Path:
    package = tmp_path / "mypkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "script.py").write_text(textwrap.dedent(source))
    return tmp_path


def _run_module(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=60)


SCRIPT = """
    import functools
    import json

    from boinc_pymw.worker import function_reference


    def task(x):
        return x + 1


    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*args):
            return fn(*args)
        return wrapper


    @decorate
    def decorated(x):
        return x


    def redefined(x):
        return 1


    if __name__ == "__main__":
        def redefined(x):  # noqa: F811 (a different function under the same name)
            return 2

        def attempt(fn):
            try:
                return function_reference(fn)
            except TypeError as exc:
                return "TypeError: " + str(exc)

        print(json.dumps([attempt(task), attempt(decorated), attempt(redefined)]))
"""


def test_function_reference_accepts_tasks_of_a_script_run_with_dash_m(tmp_path):
    root = _package(tmp_path, SCRIPT)
    proc = _run_module(root, "-m", "mypkg.script")
    assert proc.returncode == 0, proc.stderr
    task, decorated, redefined = json.loads(proc.stdout)
    assert task == "mypkg.script:task"
    assert decorated == "mypkg.script:decorated"
    assert redefined.startswith("TypeError: mypkg.script:redefined imports a different object")

    proc = _run_module(root, "mypkg/script.py")  # a plain script: no importable name
    assert proc.returncode == 0, proc.stderr
    assert all(r.startswith("TypeError: ") and "(__main__)" in r for r in json.loads(proc.stdout))
