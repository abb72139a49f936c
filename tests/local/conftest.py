"""Fixtures for the client-emulation tests: a real BOINC-API app, compiled once."""

import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).parent


@pytest.fixture(scope="session")
def boinc_api_app(tmp_path_factory) -> Path:
    """tests/local/boinc_api_app.cpp linked against libboinc_api."""
    if not shutil.which("g++") or not Path("/usr/include/boinc/boinc_api.h").exists():
        pytest.skip("needs g++ and libboinc-app-dev (scripts/setup.sh installs them)")
    out = tmp_path_factory.mktemp("bapp") / "boinc_api_app"
    subprocess.run(["g++", "-O1", "-I/usr/include/boinc", "-o", str(out),
                    str(HERE / "boinc_api_app.cpp"), "-lboinc_api", "-lboinc", "-lpthread"],
                   check=True)
    return out
