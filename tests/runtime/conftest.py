"""Fixtures of the runtime tests: the portable interpreter and the launcher,
built once per session, and the test app's own code as app_code.zip."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def linux_runtime(tmp_path_factory):
    """The x86_64-pc-linux-gnu runtime (a RuntimeBuild), built from this tree."""
    from boinc_pymw.interpreter_build.linux import build_linux_runtime

    return build_linux_runtime(tmp_path_factory.mktemp("runtime") / "linux")


@pytest.fixture(scope="session")
def linux_launcher(tmp_path_factory) -> Path:
    from boinc_pymw.interpreter_build.launcher_build import build_launcher

    return build_launcher("x86_64-pc-linux-gnu", tmp_path_factory.mktemp("launcher"))


@pytest.fixture(scope="session")
def app_code_zip(tmp_path_factory) -> Path:
    """The test tasks, zipped as an app version ships its own code."""
    path = tmp_path_factory.mktemp("app_code") / "app_code.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.write(HERE / "app_code" / "pymw_runtime_tasks.py", "pymw_runtime_tasks.py")
    return path


def write_job(path: Path, function: str, *args, **kwargs) -> Path:
    path.write_text(json.dumps({"function": function, "args": list(args), "kwargs": kwargs}))
    return path


def run_worker(cwd: Path, code: Path, *args: str, timeout: float = 60):
    """`python -m boinc_pymw.worker --code CODE ARGS` under this Python, from `cwd`
    (no PYTHONPATH: the task comes from CODE only)."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-m", "boinc_pymw.worker", "--code", str(code), *args],
                          cwd=cwd, capture_output=True, text=True, env=env, timeout=timeout)


def failing_replicas(tmp_path: Path) -> list[bytes]:
    """The output.json of one failing task run as four replicas would be: from four
    different directories, each with its own copy of the app code at a different
    path (two unpacked directories, two zips). Returns the four outputs."""
    import shutil

    app_code_zip = tmp_path / "app_code.zip"
    with zipfile.ZipFile(app_code_zip, "w") as zf:
        zf.write(HERE / "app_code" / "pymw_runtime_tasks.py", "pymw_runtime_tasks.py")
    outputs = []
    for i, (kind, name) in enumerate([("dir", "a"), ("dir", "replica_b_with_a_longer_path"),
                                      ("zip", "c"), ("zip", "d/deeper/still")]):
        host = tmp_path / f"host{i}" / name
        slot = host / "slots" / str(i)
        slot.mkdir(parents=True)
        if kind == "dir":
            code = shutil.copytree(HERE / "app_code", host / "project" / "app_code",
                                   ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (host / "project").mkdir()
            code = shutil.copyfile(app_code_zip, host / "project" / "app_code.zip")
        write_job(slot / "input.json", "pymw_runtime_tasks:fail_deep", "{bad")
        proc = run_worker(slot, Path(code))
        assert proc.returncode == 0, proc.stderr
        outputs.append((slot / "output.json").read_bytes())
    return outputs


#: numpy for the packed-requirements tests: not the host's (the venv has the newest).
PACKED_NUMPY = "2.3.5"


def wheel_cache_dir() -> Path:
    """Downloaded wheels, kept across sessions (scripts/setup.sh may pre-fetch them)."""
    import os

    return Path(os.environ.get("BOINC_PYMW_TEST_WHEELS")
                or Path.home() / ".cache" / "boinc_pymw" / "test-wheels")


def packed_numpy(platform: str, out_dir: Path):
    """A PackageSet with numpy==PACKED_NUMPY for ``platform`` (install-app's code path)."""
    from boinc_pymw.boinc.requirements import resolve_packages

    requirements = out_dir / "requirements.txt"
    out_dir.mkdir(parents=True, exist_ok=True)
    requirements.write_text(f"numpy=={PACKED_NUMPY}\n")
    sets, _, _ = resolve_packages([platform], requirements, [], wheel_cache_dir(), out_dir)
    return sets[platform]


@pytest.fixture(scope="session")
def linux_numpy(tmp_path_factory):
    return packed_numpy("x86_64-pc-linux-gnu", tmp_path_factory.mktemp("numpy-linux"))


@pytest.fixture(scope="session")
def numpy_code_zip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("numpy_code") / "app_code.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.write(HERE / "app_code" / "pymw_numpy_tasks.py", "pymw_numpy_tasks.py")
    return path
