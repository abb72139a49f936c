"""boinc_pymw's multicore back end against concurrent.futures.ProcessPoolExecutor.

Both run with the same number of workers (2 by default), in the same run:

  W1  10,000 no-op tasks: tasks/s via submit, and via map
      (ProcessPoolExecutor.map gets chunksize = ceil(n / (4 * workers)), its best
      "automatic" setting; boinc_pymw.map chooses its own)
  W2  1,000 tasks with 1 MiB in and 1 MiB out: MiB/s (both directions counted)
  W3  200 tasks of ~20 ms pure-Python CPU: efficiency = ideal time / measured,
      ideal = (serial time of one task, measured here) * 200 / workers

Both pools are started and warmed up first; then each repetition runs every
workload on boinc_pymw and on ProcessPoolExecutor back to back (so both see
the same machine load), and each figure is the median over --repeat. Targets from issue 2: W1 submit >= 3x, W1 map >= 1x, W2 >= 1.2x,
W3 >= 0.95 of ideal. ``--quick`` runs tiny sizes as a smoke test.

    .venv/bin/python benchmarks/bench_multicore.py
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import math
import os
import statistics
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import _workloads as workloads  # noqa: E402  (benchmarks/, this script's directory)
from _workloads import timed, w1_map, w1_submit, w2, w3  # noqa: E402
from boinc_pymw import Master  # noqa: E402


def noop(x=None):
    return None


def echo_payload(data: bytes) -> bytes:
    return data[::-1]


def spin(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def serial_time(loops: int, runs: int = 5) -> float:
    """Median time of one ``spin(loops)`` in this process."""
    return statistics.median(workloads.spin_times(spin, loops, runs))


def calibrate_spin(seconds: float) -> tuple[int, float]:
    """Loop count for ~``seconds`` of CPU, and the measured time of one call."""
    n = workloads.spin_loops(spin, seconds)
    return n, serial_time(n)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", "--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    args = parser.parse_args(argv)

    s = workloads.sizes(args.quick)
    n1, n2, size2, n3 = s["n1"], s["n2"], s["size2"], s["n3"]
    if args.quick:
        args.repeat = 1
    workers = args.workers
    payloads = workloads.make_payloads(n2, size2)
    loops, one = calibrate_spin(s["s3"])
    ppe_chunk = max(1, math.ceil(n1 / (4 * workers)))
    mib2 = 2 * n2 * size2 / (1 << 20)

    print(f"workers: {workers}, repeat: {args.repeat}, python {sys.version.split()[0]}, "
          f"cpus: {os.cpu_count()}")
    print(f"W3 task: {loops} loops = {one * 1000:.1f} ms serial; "
          f"ideal ~{one * n3 / workers:.2f} s (re-measured before each W3 run)")

    pools = {"boinc_pymw": Master("multicore", workers=workers),
             "ProcessPoolExecutor": cf.ProcessPoolExecutor(workers)}
    samples = {label: {"W1 submit tasks/s": [], "W1 map tasks/s": [], "W2 MiB/s": [],
                       "W3 efficiency": []} for label in pools}
    try:
        for pool in pools.values():
            list(pool.map(noop, range(100)))  # start and warm up every worker
        for _ in range(args.repeat):
            for label, pool in pools.items():
                chunk = ppe_chunk if label == "ProcessPoolExecutor" else None
                got = samples[label]
                got["W1 submit tasks/s"].append(n1 / timed(w1_submit(pool, noop, n1)))
                got["W1 map tasks/s"].append(n1 / timed(w1_map(pool, noop, n1, chunk)))
                got["W2 MiB/s"].append(mib2 / timed(w2(pool, echo_payload, payloads)))
                ideal = serial_time(loops, 3) * n3 / workers  # under the current load
                got["W3 efficiency"].append(ideal / timed(w3(pool, spin, n3, loops)))
    finally:
        for pool in pools.values():
            pool.shutdown()
    figures = {label: {key: statistics.median(values) for key, values in got.items()}
               for label, got in samples.items()}

    ours, peer = figures["boinc_pymw"], figures["ProcessPoolExecutor"]
    targets = {"W1 submit tasks/s": 3.0, "W1 map tasks/s": 1.0, "W2 MiB/s": 1.2}
    print(workloads.table_header("ProcessPool"))
    for key in ours:
        ratio = ours[key] / peer[key]
        if key == "W3 efficiency":
            target = "ours >= 0.95"
            met = ours[key] >= 0.95
        else:
            target = f"ratio >= {targets[key]:g}"
            met = ratio >= targets[key]
        print(workloads.table_row(key, ours[key], peer[key], target, met,
                                  efficiency=key == "W3 efficiency"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
