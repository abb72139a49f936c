"""numpy travels with the app version: packed wheels, unpacked once by the launcher.

Through the real launcher and portable interpreter in a slot, and under
Debian's real BOINC client. The task must see the packed numpy (PACKED_NUMPY),
never the host's (the test venv has another version), and nothing of the
host's site-packages.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from .conftest import PACKED_NUMPY, write_job
from .slot_layout import MAIN_PROGRAM, PROJECT, make_slot


def _slot(root: Path, runtime, launcher, code_zip, packages, function, *args) -> Path:
    job = write_job(root.parent / f"{root.name}_job.json", function, *args)
    files = {"python_runtime.zip": ("boinc_pymw_runtime_x.zip", runtime.archive),
             "app_code.zip": ("numpy_app_code_1.0.zip", code_zip),
             "python_packages.zip": (packages.archive.name, packages.archive),
             "input.json": (f"{root.name}_input", job)}
    slot = make_slot(root, files, {"output.json": f"{root.name}_0_output"})
    main = root / "projects" / PROJECT / MAIN_PROGRAM
    if not main.exists():
        main.write_bytes(Path(launcher).read_bytes())
        main.chmod(0o755)
    return slot


def _run(slot: Path, *argv) -> int:
    with open(slot / "stderr.txt", "ab") as stderr:
        return subprocess.run([f"../../projects/{PROJECT}/{MAIN_PROGRAM}", *argv], cwd=slot,
                              stdout=subprocess.DEVNULL, stderr=stderr, timeout=300).returncode


def test_host_numpy_differs_from_the_packed_one():
    import numpy

    assert numpy.__version__ != PACKED_NUMPY   # else the next tests prove nothing


def test_a_numpy_task_in_a_slot_sees_the_packed_numpy(tmp_path, linux_runtime, linux_launcher,
                                                      numpy_code_zip, linux_numpy):
    root = tmp_path / "client"
    slot = _slot(root, linux_runtime, linux_launcher, numpy_code_zip, linux_numpy,
                 "pymw_numpy_tasks:numpy_facts", 1000)
    assert _run(slot) == 0, (slot / "stderr.txt").read_text()
    output = json.loads((root / "projects" / PROJECT / "client_0_output").read_text())
    assert output == {"ok": True, "value": {
        "version": PACKED_NUMPY, "from_packages": True, "host_site_packages": [],
        "sum": 499500.0, "det": 5.0}}
    unpacked = [p for p in (root / "projects" / PROJECT).iterdir()
                if p.name.startswith(linux_numpy.archive.name + ".unpacked-")]
    assert len(unpacked) == 1 and (unpacked[0] / "numpy" / "__init__.py").is_file()
    # a second task starts from the unpacked copy: no new directory, same answer
    os.remove(root / "projects" / PROJECT / "client_0_output")
    assert _run(slot) == 0, (slot / "stderr.txt").read_text()
    assert json.loads((root / "projects" / PROJECT / "client_0_output").read_text()) == output
    assert [p for p in (root / "projects" / PROJECT).iterdir() if ".unpacked-" in p.name
            and p.name.startswith(linux_numpy.archive.name)] == unpacked


def test_packages_named_on_the_command_line_are_refused_under_a_client(
        tmp_path, linux_runtime, linux_launcher, numpy_code_zip, linux_numpy):
    """A workunit's command line cannot point the worker at another package folder."""
    root = tmp_path / "client"
    elsewhere = tmp_path / "elsewhere.unpacked-00000000"
    (elsewhere / "numpy").mkdir(parents=True)
    (elsewhere / "numpy" / "__init__.py").write_text("__version__ = 'forged'\n")
    slot = _slot(root, linux_runtime, linux_launcher, numpy_code_zip, linux_numpy,
                 "pymw_numpy_tasks:numpy_facts", 3)
    status = _run(slot, "--packages", str(elsewhere))
    stderr = (slot / "stderr.txt").read_text()
    assert status == 1 and "is not the unpacked packages of an app version file" in stderr, stderr


def test_the_worker_under_an_ordinary_python_puts_packages_before_site_packages(
        tmp_path, linux_numpy):
    """-i condor style: packages given with --packages win over the host's site-packages."""
    import zipfile

    unpacked = tmp_path / "pk"
    with zipfile.ZipFile(linux_numpy.archive) as zf:
        zf.extractall(unpacked)
    from .conftest import HERE

    write_job(tmp_path / "input.json", "pymw_numpy_tasks:numpy_facts", 10)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-m", "boinc_pymw.worker", "--code",
                           str(HERE / "app_code"), "--packages", str(unpacked)],
                          cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    value = json.loads((tmp_path / "output.json").read_text())["value"]
    assert value["version"] == PACKED_NUMPY and value["sum"] == 45.0


def test_a_declared_entry_point_of_a_carried_package(tmp_path, linux_numpy):
    """install-app --entry-point numpy:linalg.det: a carried package's function is callable,
    and its other functions are not."""
    import zipfile

    unpacked = tmp_path / "pk"
    with zipfile.ZipFile(linux_numpy.archive) as zf:
        zf.extractall(unpacked)
    code = tmp_path / "code.zip"
    with zipfile.ZipFile(code, "w") as zf:
        zf.writestr("boinc_pymw_entry_points.json", json.dumps(
            {"format": 1, "modules": ["numpy"], "entry_points": ["numpy:linalg.det"]}))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}

    def call(function, *args):
        write_job(tmp_path / "input.json", function, *args)
        return subprocess.run([sys.executable, "-m", "boinc_pymw.worker", "--code", str(code),
                               "--packages", str(unpacked)], cwd=tmp_path, capture_output=True,
                              text=True, env=env, timeout=120)

    proc = call("numpy:linalg.det", [[2.0, 1.0], [1.0, 3.0]])
    assert proc.returncode == 0, proc.stderr
    assert round(json.loads((tmp_path / "output.json").read_text())["value"], 9) == 5.0
    proc = call("numpy:save", "x.npy", [1])
    assert proc.returncode == 1 and "not an entry point" in proc.stderr
    assert not (tmp_path / "x.npy").exists()
