"""Session fixtures for the launcher tests: launchers and helper programs built once."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess

import pytest
from launcher_test_support import ECHO_ARGV_SOURCE, BoincSlot

from boinc_pymw.interpreter_build.launcher_build import (
    build_launcher,
    pack_runtime_archive,
    write_runtime_config,
)


@pytest.fixture
def boinc_slot(tmp_path) -> BoincSlot:
    return BoincSlot(tmp_path / "BOINC Data ü")


@pytest.fixture(scope="session")
def native_launcher(tmp_path_factory) -> pathlib.Path:
    return build_launcher("x86_64-pc-linux-gnu", tmp_path_factory.mktemp("launcher-linux"))


@pytest.fixture(scope="session")
def echo_program(tmp_path_factory) -> pathlib.Path:
    build = tmp_path_factory.mktemp("echo")
    (build / "echo_argv.c").write_text(ECHO_ARGV_SOURCE)
    subprocess.run(["gcc", "-O1", "-o", str(build / "echo_argv"), str(build / "echo_argv.c")], check=True)
    return build / "echo_argv"


@pytest.fixture
def make_runtime_archive(tmp_path):
    """make(interpreter_file, interpreter_name, args, extra={name: bytes}) -> archive path."""
    counter = [0]

    def make(interpreter_file, interpreter_name, args, extra=None):
        counter[0] += 1
        runtime = tmp_path / f"runtime{counter[0]}"
        target = runtime / interpreter_name
        target.parent.mkdir(parents=True)
        shutil.copy2(interpreter_file, target)
        for name, data in (extra or {}).items():
            (runtime / name).parent.mkdir(parents=True, exist_ok=True)
            (runtime / name).write_bytes(data)
        write_runtime_config(runtime, interpreter_name, args)
        return pack_runtime_archive(runtime, tmp_path / f"runtime{counter[0]}.zip")

    return make



@pytest.fixture(scope="session")
def wine_env(tmp_path_factory):
    """Environment for a fresh, headless wine prefix, created once per session."""
    wine = shutil.which("wine") or shutil.which("wine64")
    if wine is None:
        pytest.fail("wine is not installed (scripts/setup.sh installs it)")
    env = {**os.environ, "WINEPREFIX": str(tmp_path_factory.mktemp("wineprefix")), "WINEDEBUG": "-all",
           "WINEDLLOVERRIDES": "mscoree,mshtml=", "DISPLAY": ""}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # a volunteer's machine does not set it
    done = subprocess.run([wine, "wineboot", "--init"], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=600)
    assert done.returncode == 0, done.stdout.decode(errors="replace")
    subprocess.run(["wineserver", "-w"], env=env, timeout=600)
    env["WINE"] = wine
    return env


@pytest.fixture(scope="session")
def windows_launcher(tmp_path_factory) -> pathlib.Path:
    return build_launcher("windows_x86_64", tmp_path_factory.mktemp("launcher-windows"))


@pytest.fixture(scope="session")
def windows_runtime(tmp_path_factory):
    """(archive, unpacked runtime dir) of the windows_x86_64 runtime."""
    from boinc_pymw.interpreter_build.windows import PLATFORM, build_windows_runtime

    out = tmp_path_factory.mktemp("windows-runtime")
    # the tasks travel as app_code.zip, as install-app ships them (test_launcher_wine._install)
    archive = build_windows_runtime(out, launcher=False)
    return archive, out / PLATFORM
