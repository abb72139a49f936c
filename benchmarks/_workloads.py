"""Workloads W1-W3 shared by bench_multicore.py and bench_mpi.py: sizes,
payloads, W3's calibration, the timed runs and the results table.

The task functions themselves (``noop``, ``echo_payload``, ``spin``) stay in
each script and are passed in: there they are ``__main__`` functions, as in
a user's script, which boinc_pymw ships to its workers by value
(cloudpickle) -- part of what the figures measure. Only the process that
drives the pools imports this module (and mpi4py.futures' worker ranks, which
re-run bench_mpi.py as ``__worker__``); each script's directory is on its
sys.path there (the script's own directory, and bench_mpi.py's PYTHONPATH).
"""

from __future__ import annotations

import os
import time


def sizes(quick: bool) -> dict:
    """W1: n1 tasks; W2: n2 tasks of size2 bytes each way; W3: n3 tasks of ~s3 seconds."""
    if quick:
        return {"n1": 500, "n2": 20, "size2": 64 << 10, "n3": 10, "s3": 0.002}
    return {"n1": 10_000, "n2": 1_000, "size2": 1 << 20, "n3": 200, "s3": 0.020}


def make_payloads(n: int, size: int) -> list:
    """``n`` random payloads of ``size`` bytes (at most 16 distinct ones)."""
    blobs = [os.urandom(size) for _ in range(min(n, 16))]
    return [blobs[i % len(blobs)] for i in range(n)]


def spin_loops(spin, seconds: float) -> int:
    """Loop count that makes ``spin(loops)`` take about ``seconds`` of CPU."""
    n = 10_000
    while True:
        t = time.perf_counter()
        spin(n)
        took = time.perf_counter() - t
        if took > 0.005:
            break
        n *= 2
    return int(n * seconds / took)


def spin_times(spin, loops: int, runs: int) -> list:
    """Measured times of ``runs`` calls of ``spin(loops)`` in this process."""
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        spin(loops)
        times.append(time.perf_counter() - t)
    return times


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def w1_submit(pool, noop, n: int):
    def run():
        for f in [pool.submit(noop, i) for i in range(n)]:
            f.result()
    return run


def w1_map(pool, noop, n: int, chunksize):
    def run():
        for _ in pool.map(noop, range(n), chunksize=chunksize):
            pass
    return run


def w2(pool, echo_payload, payloads: list):
    def run():
        for f in [pool.submit(echo_payload, p) for p in payloads]:
            if len(f.result()) != len(payloads[0]):
                raise AssertionError("W2 payload came back with the wrong size")
    return run


def w3(pool, spin, n_tasks: int, loops: int):
    def run():
        for f in [pool.submit(spin, loops) for _ in range(n_tasks)]:
            f.result()
    return run


def table_header(peer: str) -> str:
    return f"{'figure':<20}{'boinc_pymw':>14}{peer:>14}{'ratio':>8}  target"


def table_row(label: str, ours: float, peer: float, target: str, met: bool, *,
              efficiency: bool = False) -> str:
    """One figure: ours, the peer's, ours / peer, and whether ``target`` was met."""
    fmt = "{:>14.3f}" if efficiency else "{:>14,.0f}"
    return (f"{label:<20}" + fmt.format(ours) + fmt.format(peer)
            + f"{ours / peer:>8.2f}  {target} {'met' if met else 'NOT met'}")
