"""The launcher + portable interpreter + worker in a client-style slot directory."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import write_job
from .slot_layout import PROJECT, make_slot

TIMEOUT = 120


def _slot(root: Path, runtime, launcher, app_code, job_path: Path) -> Path:
    files = {
        "python_runtime.zip": ("boinc_pymw_runtime_1.0_x86_64-pc-linux-gnu.zip", runtime.archive),
        "app_code.zip": ("pymw_app_code_1.0.zip", app_code),
        "input.json": (f"{root.name}_input", job_path),
    }
    slot = make_slot(root, files, {"output.json": f"{root.name}_0_output"})
    main = root / "projects" / PROJECT / "boinc_pymw_launcher_1.0_x86_64-pc-linux-gnu"
    if not main.exists():
        main.write_bytes(Path(launcher).read_bytes())
        main.chmod(0o755)
    return slot


def _start(slot: Path) -> subprocess.Popen:
    # As the client does: exec the main program through its relative path, cwd = slot.
    stderr = open(slot / "stderr.txt", "ab")
    return subprocess.Popen([f"../../projects/{PROJECT}/boinc_pymw_launcher_1.0_x86_64-pc-linux-gnu"],
                            cwd=slot, stdout=subprocess.DEVNULL, stderr=stderr,
                            start_new_session=True)


def _run(slot: Path) -> int:
    proc = _start(slot)
    try:
        return proc.wait(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _output(root: Path) -> dict:
    return json.loads((root / "projects" / PROJECT / f"{root.name}_0_output").read_text())


def test_slot_run_produces_the_task_output(tmp_path, linux_runtime, linux_launcher, app_code_zip):
    root = tmp_path / "add"
    root.mkdir()
    job = write_job(tmp_path / "job.json", "pymw_runtime_tasks:add", 40, b=2)
    slot = _slot(root, linux_runtime, linux_launcher, app_code_zip, job)
    assert _run(slot) == 0, (slot / "stderr.txt").read_text()
    assert _output(root) == {"ok": True, "value": 42}
    assert (slot / "boinc_finish_called").read_text().split()[0] == "0"


def test_slot_task_exception_is_an_answer(tmp_path, linux_runtime, linux_launcher, app_code_zip):
    root = tmp_path / "fail"
    root.mkdir()
    job = write_job(tmp_path / "job.json", "pymw_runtime_tasks:fail", "no good")
    slot = _slot(root, linux_runtime, linux_launcher, app_code_zip, job)
    assert _run(slot) == 0, (slot / "stderr.txt").read_text()
    output = _output(root)
    assert output["ok"] is False
    assert output["error"]["type"] == "ValueError"
    assert output["error"]["message"] == "no good"
    assert "pymw_runtime_tasks.py" in output["error"]["traceback"]


def test_slot_task_error_is_the_same_in_every_slot(tmp_path, linux_runtime, linux_launcher,
                                                  app_code_zip):
    """Two hosts: other BOINC data directories, so another copy of the runtime and the
    app code, in another slot. The error records are byte-identical."""
    job = write_job(tmp_path / "job.json", "pymw_runtime_tasks:fail_deep", "{bad")
    outputs = []
    for name in ("host_a", "host_b_whose_boinc_directory_is_elsewhere"):
        root = tmp_path / name
        root.mkdir()
        slot = _slot(root, linux_runtime, linux_launcher, app_code_zip, job)
        assert _run(slot) == 0, (slot / "stderr.txt").read_text()
        outputs.append((root / "projects" / PROJECT / f"{root.name}_0_output").read_bytes())
    assert outputs[0] == outputs[1]
    text = outputs[0].decode()
    assert str(tmp_path) not in text
    error = json.loads(text)["error"]
    assert error["message"] == ("cannot parse '{bad' for <pymw_runtime_tasks.Widget object "
                                "at 0x...>; slot ., code pymw_runtime_tasks.py")
    assert 'File "pymw_runtime_tasks.py", line ' in error["traceback"]
    assert 'python311.zip/json/decoder.py", line ' in error["traceback"]  # as compiled in


def test_slot_hard_crash_leaves_a_python_traceback_in_stderr_txt(tmp_path, linux_runtime,
                                                                 linux_launcher, app_code_zip):
    root = tmp_path / "crash"
    root.mkdir()
    job = write_job(tmp_path / "job.json", "pymw_runtime_tasks:crash")
    slot = _slot(root, linux_runtime, linux_launcher, app_code_zip, job)
    assert _run(slot) != 0
    stderr = (slot / "stderr.txt").read_text()
    assert "Fatal Python error: Segmentation fault" in stderr
    assert re.search(r'File ".*pymw_runtime_tasks.py", line \d+ in crash', stderr), stderr
    assert not (root / "projects" / PROJECT / f"{root.name}_0_output").exists()


def test_slot_interpreter_view(tmp_path, linux_runtime, linux_launcher, app_code_zip):
    """Inside a task: only the unpacked runtime and the app code on sys.path,
    init_data.xml read, Python signal handling intact after boinc.init()."""
    root = tmp_path / "env"
    root.mkdir()
    job = write_job(tmp_path / "job.json", "pymw_runtime_tasks:environment")
    slot = _slot(root, linux_runtime, linux_launcher, app_code_zip, job)
    assert _run(slot) == 0, (slot / "stderr.txt").read_text()
    value = _output(root)["value"]
    project_dir = str((root / "projects" / PROJECT).resolve())
    assert all(p.startswith(project_dir) for p in value["sys_path"]), value["sys_path"]
    assert value["sys_path"][0].endswith("pymw_app_code_1.0.zip")
    assert value["executable"].startswith(project_dir)
    assert value["wu_name"] == "wu_1"
    assert value["standalone"] is True  # no client shared memory here
    assert value["usr1"] == ["usr1"]
    assert value["sigint_is_python"] is True


def test_slot_runtime_failure_is_reported(tmp_path, linux_runtime, linux_launcher, app_code_zip):
    root = tmp_path / "missing"
    root.mkdir()
    job = write_job(tmp_path / "job.json", "pymw_runtime_tasks:no_such_function")
    slot = _slot(root, linux_runtime, linux_launcher, app_code_zip, job)
    assert _run(slot) != 0
    stderr = (slot / "stderr.txt").read_text()
    assert "pymw_runtime_tasks:no_such_function is refused: it is not an entry point" in stderr
    assert not (root / "projects" / PROJECT / f"{root.name}_0_output").exists()


def _checkpoint_step(slot: Path) -> int:
    try:
        return json.loads((slot / "pymw_checkpoint.json").read_text())["state"]["i"]
    except (FileNotFoundError, ValueError):
        return 0


def test_kill_9_resumes_from_checkpoint(tmp_path, linux_runtime, linux_launcher, app_code_zip):
    n, step = 16, 0.25
    job = write_job(tmp_path / "job.json", "pymw_runtime_tasks:sum_of_squares", n, step)

    straight = tmp_path / "straight"
    straight.mkdir()
    straight_slot = _slot(straight, linux_runtime, linux_launcher, app_code_zip, job)
    assert _run(straight_slot) == 0, (straight_slot / "stderr.txt").read_text()

    killed = tmp_path / "killed"
    killed.mkdir()
    slot = _slot(killed, linux_runtime, linux_launcher, app_code_zip, job)
    proc = _start(slot)
    try:
        deadline = time.monotonic() + TIMEOUT
        while _checkpoint_step(slot) < 4 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, "the job ended before it could be killed"
        assert _checkpoint_step(slot) >= 4, "no checkpoint was written in time"
        os.kill(proc.pid, signal.SIGKILL)  # the launcher exec()s: this is the interpreter
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert not (slot / "boinc_finish_called").exists()
    resumed_at = _checkpoint_step(slot)

    assert _run(slot) == 0, (slot / "stderr.txt").read_text()
    episodes = [int(x) for x in (slot / "episodes.log").read_text().split()]
    assert episodes[0] == 0
    assert len(episodes) == 2 and episodes[1] == resumed_at and resumed_at >= 4, episodes
    assert _output(killed) == _output(straight) == {
        "ok": True, "value": {"n": n, "total": sum(i * i for i in range(n))}}
