"""examples/numpy_stats.py: numpy in every task, the same answer under -i multicore and
-i boinc-local --requirements (numpy packed and carried by the local app version)."""

import os
import subprocess
import sys
from pathlib import Path

from .conftest import xdg_cache_home

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def _run(argv, local_cache, cwd):
    env = dict(os.environ, XDG_CACHE_HOME=xdg_cache_home(local_cache))
    env.pop("BOINC_PYMW_INTERFACE", None)
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.splitlines()[0]


def test_numpy_example_multicore_and_boinc_local_agree(tmp_path, local_cache):
    args = [sys.executable, str(EXAMPLES / "numpy_stats.py"), "-t", "2", "-s", "5000", "-n", "2"]
    multicore = _run(args + ["-i", "multicore"], local_cache, tmp_path)
    local = _run(args + ["-i", "boinc-local", "--quorum", "1", "--workdir", str(tmp_path / "w"),
                         "--requirements", str(EXAMPLES / "numpy_requirements.txt")],
                 local_cache, tmp_path)
    assert local == multicore and multicore.startswith("mean ")
    packed = list((local_cache / "files").glob("boinc_pymw_packages_x86_64-pc-linux-gnu_*.zip"))
    assert len(packed) == 1
