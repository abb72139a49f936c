"""What a volunteer's real BOINC client (Debian's 7.20.5) runs: numpy carried by the app
version, and hostile workunits refused (tests/runtime/test_real_client.py has the rest)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import zipfile
from pathlib import Path

import pytest

from .boinc_client import (PROJECT_DIR, AppFile, client_command, result_record,
                           write_client_dir)
from .conftest import PACKED_NUMPY

pytestmark = pytest.mark.skipif(shutil.which("boinc") is None,
                                reason="Debian's boinc-client is not installed (scripts/setup.sh)")


def _run(tmp_path, runtime, launcher, code_zip, job: dict, packages=None, inputs=None,
         command_line=""):
    root = tmp_path / "boinc"
    root.mkdir()
    job_path = tmp_path / "job.json"
    job_path.write_text(json.dumps(job))
    app_files = [
        AppFile("boinc_pymw_launcher_1.0_x86_64-pc-linux-gnu", Path(launcher), main_program=True),
        AppFile("boinc_pymw_runtime_1.0_x86_64-pc-linux-gnu.zip", runtime.archive,
                open_name="python_runtime.zip"),
        AppFile("pymw_app_code_1.0.zip", code_zip, open_name="app_code.zip")]
    if packages is not None:
        app_files.append(AppFile(packages.archive.name, packages.archive,
                                 open_name="python_packages.zip"))
    write_client_dir(root, app_files, {"input.json": ("pymw_wu_1_input", job_path), **(inputs or {})},
                     {"output.json": "pymw_wu_1_0_output"}, command_line=command_line)
    proc = subprocess.Popen(client_command(root), cwd=root, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        log, _ = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    output = root / "projects" / PROJECT_DIR / "pymw_wu_1_0_output"
    return result_record(root, "pymw_wu_1_0"), output, log


def test_real_client_runs_a_numpy_task_with_the_packed_numpy(tmp_path, linux_runtime, linux_launcher,
                                                            numpy_code_zip, linux_numpy):
    result, output, log = _run(tmp_path, linux_runtime, linux_launcher, numpy_code_zip,
                               {"function": "pymw_numpy_tasks:numpy_facts", "args": [100]},
                               packages=linux_numpy)
    assert result["exit_status"] == "0", (result, log)
    value = json.loads(output.read_text())["value"]
    assert value == {"version": PACKED_NUMPY, "from_packages": True, "host_site_packages": [],
                     "sum": 4950.0, "det": 5.0}


@pytest.mark.parametrize("job, command_line, evil_input", [
    ({"function": "os:system", "args": ["touch {marker}"]}, "", False),
    ({"function": "evil:run", "args": []}, "--code evil.zip", True),
    ({"function": "evil:run", "args": []}, "--trusted-job", True),
])
def test_real_client_refuses_hostile_workunits(tmp_path, linux_runtime, linux_launcher, app_code_zip,
                                               job, command_line, evil_input):
    marker = tmp_path / "marker"
    job = json.loads(json.dumps(job).replace("{marker}", str(marker)))
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("evil.py", f"open({str(marker)!r}, 'w')\ndef run():\n    pass\n")
    inputs = {"evil.zip": ("pymw_wu_1_evil.zip", evil)} if evil_input else None
    result, output, log = _run(tmp_path, linux_runtime, linux_launcher, app_code_zip, job,
                               inputs=inputs, command_line=command_line)
    assert result["exit_status"] == "1", (result, log)
    # the slot's stderr.txt is what the client returns as the result's stderr_out
    stderr = (tmp_path / "boinc" / "slots" / "0" / "stderr.txt").read_text()
    assert "boinc_pymw.worker: error:" in stderr, stderr
    assert "is refused" in stderr or "not a file of the app version" in stderr, stderr
    assert not marker.exists() and not output.exists()
