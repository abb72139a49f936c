"""The examples give the same answers with -i multicore and -i boinc-local
(monte_pi through -i, prime_finder through 'boinc_pymw run-local')."""

import os
import subprocess
import sys
from pathlib import Path

from .conftest import xdg_cache_home

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples"
BIN = Path(sys.executable).parent


def run(argv, local_cache, cwd):
    env = dict(os.environ, XDG_CACHE_HOME=xdg_cache_home(local_cache))
    env.pop("BOINC_PYMW_INTERFACE", None)
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.splitlines()[0]       # the answer; the next line is timing


def test_monte_pi_multicore_and_boinc_local_agree(tmp_path, local_cache):
    args = [sys.executable, str(EXAMPLES / "monte_pi.py"), "-t", "3", "-s", "2000", "-n", "2"]
    multicore = run(args + ["-i", "multicore"], local_cache, tmp_path)
    local = run(args + ["-i", "boinc-local", "--workdir", str(tmp_path / "w")], local_cache,
                tmp_path)
    assert local == multicore and multicore.startswith("pi ~= ")
    # every task ran through BOINC slots: 3 workunits x quorum 2
    assert len(list((tmp_path / "w" / "results_store" / "batch_1").glob("*.json"))) == 3


def test_prime_finder_multicore_and_run_local_agree(tmp_path, local_cache):
    task_args = ["--start", "1000", "--stop", "4000", "-t", "3"]
    multicore = run([sys.executable, str(EXAMPLES / "prime_finder.py"), "-i", "multicore",
                     "-n", "2", *task_args], local_cache, tmp_path)
    local = run([str(BIN / "boinc_pymw"), "run-local", "-n", "2", "--workdir",
                 str(tmp_path / "w"), str(EXAMPLES / "prime_finder.py"), *task_args],
                local_cache, tmp_path)
    assert local == multicore and " primes in " in multicore
