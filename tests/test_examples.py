"""The examples and the benchmark, run as a user would run them."""

import importlib
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def run(*argv, env=None):
    return subprocess.run([sys.executable, *map(str, argv)], capture_output=True, text=True,
                          check=True, timeout=300, cwd=ROOT, env=env)


@pytest.fixture
def examples_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))


def test_monte_pi_prints_an_estimate_and_its_timing():
    out = run(EXAMPLES / "monte_pi.py", "-i", "multicore", "-n", "2",
              "-t", "6", "-s", "20000").stdout
    estimate = float(re.search(r"pi ~= ([0-9.]+)", out).group(1))
    assert abs(estimate - math.pi) < 0.1
    assert "120,000 points in 6 tasks" in out
    assert re.search(r"interface multicore, 2 workers: [0-9.]+ s computing", out)


def test_monte_pi_follows_the_environment_variable():
    env = dict(os.environ, BOINC_PYMW_INTERFACE="multicore")
    out = run(EXAMPLES / "monte_pi.py", "-n", "1", "-t", "2", "-s", "1000", env=env).stdout
    assert "interface multicore, 1 workers" in out


def _count_by_trial_division(low, high):
    return sum(1 for n in range(max(low, 2), high)
               if all(n % d for d in range(2, math.isqrt(n) + 1)))


def test_prime_finder_counts_correctly():
    out = run(EXAMPLES / "prime_finder.py", "-i", "multicore", "-n", "2",
              "--start", "1000", "--stop", "20000", "-t", "7").stdout
    count = int(re.search(r"^(\d+) primes in", out, re.M).group(1))
    assert count == _count_by_trial_division(1000, 20000)
    assert re.search(r"interface multicore, 2 workers: [0-9.]+ s computing", out)


def test_prime_finder_rejects_an_empty_range():
    proc = subprocess.run([sys.executable, str(EXAMPLES / "prime_finder.py"),
                           "--start", "10", "--stop", "5"], capture_output=True, text=True)
    assert proc.returncode == 2 and "--stop must be greater" in proc.stderr


def test_unknown_interface_is_a_clear_error():
    proc = subprocess.run([sys.executable, str(EXAMPLES / "monte_pi.py"), "-i", "smoke-signals"],
                          capture_output=True, text=True)
    assert proc.returncode != 0
    assert "smoke-signals" in proc.stderr and "multicore" in proc.stderr


@pytest.mark.parametrize("ref, args", [
    ("monte_pi:count_hits", [1000, 7]),
    ("prime_finder:count_primes", [1, 100]),
])
def test_task_functions_are_importable_by_name_with_json_data(examples_on_path, ref, args):
    """Remote back ends reference tasks as "module:name" with JSON arguments."""
    module_name, name = ref.split(":")
    fn = getattr(importlib.import_module(module_name), name)
    assert fn.__module__ == module_name
    result = fn(*json.loads(json.dumps(args)))
    assert json.loads(json.dumps(result)) == result


def test_miller_rabin_agrees_with_trial_division(examples_on_path):
    from prime_finder import count_primes, is_prime, split

    assert [n for n in range(200) if is_prime(n)] == \
        [n for n in range(200) if _count_by_trial_division(n, n + 1)]
    assert is_prime(2**61 - 1) and not is_prime((2**31 - 1) * (2**61 - 1))
    assert count_primes(0, 1000) == 168
    parts = split(10, 101, 4)
    assert parts[0][0] == 10 and parts[-1][1] == 101
    assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))


def test_benchmark_quick_run_prints_every_figure_and_ratio():
    out = run(ROOT / "benchmarks" / "bench_multicore.py", "--quick").stdout
    lines = out.splitlines()
    for figure in ("W1 submit", "W1 map default", "W2 MiB/s", "W3 efficiency"):
        assert any(l.startswith(figure + " ") for l in lines), figure     # the medians table
    for ratio in ("W1 map default / ours", "W1 map default / Pool.imap",
                  "W1 submit / ProcessPoolExecutor submit", "W2 MiB/s / ProcessPoolExecutor"):
        line = next(l for l in lines if l.startswith(ratio))                # the ratios table
        assert re.search(r"\d\.\d\d\s+ratio >= [\d.]+ (met|NOT met)$", line), line
    line = next(l for l in lines if l.startswith("W3 efficiency of boinc_pymw"))
    assert re.search(r"\d\.\d{3}\s+target >= 0\.95 of ideal (met|NOT met)$", line), line
