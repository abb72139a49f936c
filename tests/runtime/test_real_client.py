"""The runtime under Debian's real BOINC client (7.20.5), with no server.

A hand-written client_state.xml holds one task whose app version is the
launcher + the runtime archive + the test app's code; the client runs it
exactly as it would a scheduler-sent task (link files, shared memory,
init_data.xml, boinc_finish protocol) and exits after it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from .boinc_client import (MASTER_URL, PROJECT_DIR, AppFile, boinccmd, client_command, free_port,
                           processes_in, result_record, write_client_dir,
                           write_global_prefs_override)
from .conftest import write_job

pytestmark = pytest.mark.skipif(shutil.which("boinc") is None,
                                reason="Debian's boinc-client is not installed (scripts/setup.sh)")

RESULT_COMPUTE_ERROR = 3
CLIENT_TIMEOUT = 180


def _client_dir(tmp_path: Path, runtime, launcher, app_code, function: str, *args) -> Path:
    root = tmp_path / "boinc"
    root.mkdir()
    job = write_job(tmp_path / "job.json", function, *args)
    app_files = [
        AppFile("boinc_pymw_launcher_1.0_x86_64-pc-linux-gnu", Path(launcher), main_program=True),
        AppFile("boinc_pymw_runtime_1.0_x86_64-pc-linux-gnu.zip", runtime.archive,
                open_name="python_runtime.zip"),
        AppFile("pymw_app_code_1.0.zip", app_code, open_name="app_code.zip"),
    ]
    write_client_dir(root, app_files, {"input.json": ("pymw_wu_1_input", job)},
                     {"output.json": "pymw_wu_1_0_output"})
    return root


def _start_client(root: Path, gui_rpc_port: int | None = None) -> subprocess.Popen:
    return subprocess.Popen(client_command(root, gui_rpc_port), cwd=root, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _finish_client(proc: subprocess.Popen, timeout: float = CLIENT_TIMEOUT) -> str:
    try:
        log, _ = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:  # never leave a client (or its app) behind
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    return log


def _run_client(tmp_path: Path, runtime, launcher, app_code, function: str, *args):
    root = _client_dir(tmp_path, runtime, launcher, app_code, function, *args)
    proc = _start_client(root)
    log = _finish_client(proc)
    return root, proc.returncode, log


def test_real_client_runs_the_task(tmp_path, linux_runtime, linux_launcher, app_code_zip):
    root, status, log = _run_client(tmp_path, linux_runtime, linux_launcher, app_code_zip,
                                    "pymw_runtime_tasks:environment")
    assert status == 0, log
    assert "Starting task pymw_wu_1_0" in log, log
    assert "exit_after_finish: job pymw_wu_1" in log, log
    result = result_record(root, "pymw_wu_1_0")
    assert result["exit_status"] == "0", result
    assert int(result["state"]) != RESULT_COMPUTE_ERROR, result
    slot = root / "slots" / "0"
    assert (slot / "boinc_finish_called").read_text().split()[0] == "0"

    output = json.loads((root / "projects" / PROJECT_DIR / "pymw_wu_1_0_output").read_text())
    assert output["ok"] is True, output
    value = output["value"]
    assert value["standalone"] is False  # attached to the client's shared memory
    assert value["wu_name"] == "pymw_wu_1"
    assert value["usr1"] == ["usr1"] and value["sigint_is_python"] is True
    assert value["executable"].startswith(str(root / "projects" / PROJECT_DIR))


def test_real_client_gets_runtime_failures_in_stderr(tmp_path, linux_runtime, linux_launcher,
                                                     app_code_zip):
    root, status, log = _run_client(tmp_path, linux_runtime, linux_launcher, app_code_zip,
                                    "pymw_runtime_tasks:not_json")
    assert status == 0, log
    result = result_record(root, "pymw_wu_1_0")
    assert int(result["state"]) == RESULT_COMPUTE_ERROR, result
    assert result["exit_status"] == "1", result
    # stderr.txt of the slot is what the client returns as the result's stderr_out
    stderr = (root / "slots" / "0" / "stderr.txt").read_text()
    assert "boinc_pymw.worker: error: the task's result is not JSON data" in stderr, stderr
    assert "called boinc_finish(1)" in stderr, stderr
    assert not (root / "projects" / PROJECT_DIR / "pymw_wu_1_0_output").exists()


def _checkpoint_step(slot: Path) -> int:
    try:
        return json.loads((slot / "pymw_checkpoint.json").read_text())["state"]["i"]
    except (FileNotFoundError, ValueError):
        return 0


def test_real_client_kill_9_resumes_from_checkpoint(tmp_path, linux_runtime, linux_launcher,
                                                    app_code_zip):
    """kill -9 of the running app: the client restarts it (now or on its next
    start) and the job resumes from the checkpoint BOINC allowed it to write."""
    n, step = 16, 0.25
    root = _client_dir(tmp_path, linux_runtime, linux_launcher, app_code_zip,
                       "pymw_runtime_tasks:sum_of_squares", n, step)
    write_global_prefs_override(root, checkpoint_seconds=1)
    slot = root / "slots" / "0"
    output = root / "projects" / PROJECT_DIR / "pymw_wu_1_0_output"

    client = _start_client(root)
    try:
        deadline = time.monotonic() + CLIENT_TIMEOUT
        while _checkpoint_step(slot) < 4 and client.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _checkpoint_step(slot) >= 4, "no checkpoint was written in time"
        apps = processes_in(slot)
        assert len(apps) == 1, apps
        os.kill(apps[0], signal.SIGKILL)
        logs = [_finish_client(client)]
        if not output.exists():  # this client version exits after the kill: start it again
            client = _start_client(root)
            logs.append(_finish_client(client))
    finally:
        if client.poll() is None:
            os.killpg(client.pid, signal.SIGKILL)
            client.communicate()

    log = "\n".join(logs)
    result = result_record(root, "pymw_wu_1_0")
    assert result["exit_status"] == "0", (result, log)
    episodes = [int(x) for x in (slot / "episodes.log").read_text().split()]
    assert len(episodes) == 2 and episodes[0] == 0 and episodes[1] >= 4, (episodes, log)
    assert json.loads(output.read_text()) == {
        "ok": True, "value": {"n": n, "total": sum(i * i for i in range(n))}}


def _step_when_settled(slot: Path, quiet: float, limit: float) -> int:
    """The checkpoint step once it has not moved for `quiet` seconds (or after `limit`)."""
    step, since, end = _checkpoint_step(slot), time.monotonic(), time.monotonic() + limit
    while time.monotonic() < end:
        time.sleep(0.1)
        now = _checkpoint_step(slot)
        if now != step:
            step, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
    return step


def test_real_client_suspends_and_resumes_the_python_task(tmp_path, linux_runtime,
                                                          linux_launcher, app_code_zip):
    """Suspend from the client (as the Manager does) stops the Python job in
    BOINC's SIGALRM handler; resume lets it finish in the same process."""
    n, step = 24, 0.25
    root = _client_dir(tmp_path, linux_runtime, linux_launcher, app_code_zip,
                       "pymw_runtime_tasks:sum_of_squares", n, step)
    write_global_prefs_override(root, checkpoint_seconds=1)
    slot = root / "slots" / "0"
    port = free_port()
    client = _start_client(root, port)
    try:
        deadline = time.monotonic() + CLIENT_TIMEOUT
        while _checkpoint_step(slot) < 2 and client.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _checkpoint_step(slot) >= 2, "the task did not start checkpointing"
        apps = processes_in(slot)
        assert len(apps) == 1, apps
        done = boinccmd(root, port, "--task", MASTER_URL, "pymw_wu_1_0", "suspend")
        assert done.returncode == 0, done.stderr
        held = _step_when_settled(slot, quiet=2.5, limit=30)
        assert held < n, "the task ran to the end although suspended"
        assert client.poll() is None, "the client exited: the task ended while suspended"
        assert processes_in(slot) == apps  # the same process, held, not ended or restarted
        done = boinccmd(root, port, "--task", MASTER_URL, "pymw_wu_1_0", "resume")
        assert done.returncode == 0, done.stderr
        log = _finish_client(client)
    finally:
        if client.poll() is None:
            os.killpg(client.pid, signal.SIGKILL)
            client.communicate()
    assert client.returncode == 0, log
    assert result_record(root, "pymw_wu_1_0")["exit_status"] == "0"
    assert [int(x) for x in (slot / "episodes.log").read_text().split()] == [0]  # one episode
    output = json.loads((root / "projects" / PROJECT_DIR / "pymw_wu_1_0_output").read_text())
    assert output == {"ok": True, "value": {"n": n, "total": sum(i * i for i in range(n))}}
