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
