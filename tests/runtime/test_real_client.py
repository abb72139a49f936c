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
from pathlib import Path

import pytest

from .boinc_client import PROJECT_DIR, AppFile, client_command, result_record, write_client_dir
from .conftest import write_job

pytestmark = pytest.mark.skipif(shutil.which("boinc") is None,
                                reason="Debian's boinc-client is not installed (scripts/setup.sh)")

RESULT_COMPUTE_ERROR = 3
CLIENT_TIMEOUT = 180


def _run_client(tmp_path: Path, runtime, launcher, app_code, function: str, *args):
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
    proc = subprocess.Popen(client_command(root), cwd=root, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        log, _ = proc.communicate(timeout=CLIENT_TIMEOUT)
    finally:
        if proc.poll() is None:  # never leave a client behind
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
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
