"""boinc_pymw's multicore back end against concurrent.futures.ProcessPoolExecutor.

Both run with the same number of workers (2 by default), in the same run:

  W1  10,000 no-op tasks: tasks/s via submit, and via map
      (ProcessPoolExecutor.map gets chunksize = ceil(n / (4 * workers)), its best
      "automatic" setting; boinc_pymw.map chooses its own)
  W2  1,000 tasks with 1 MiB in and 1 MiB out: MiB/s (both directions counted)
  W3  200 tasks of ~20 ms pure-Python CPU: efficiency = ideal time / measured,
      ideal = (serial time of one task, measured here) * 200 / workers

Each figure is the median of --repeat runs; pools are started and warmed up
before timing. Targets from issue 2: W1 submit >= 3x, W1 map >= 1x, W2 >= 1.2x,
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
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

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


def calibrate_spin(seconds: float) -> tuple[int, float]:
    """Loop count for ~``seconds`` of CPU, and the measured time of one call."""
    n = 10_000
    while True:
        t = time.perf_counter()
        spin(n)
        took = time.perf_counter() - t
        if took > 0.005:
            break
        n *= 2
    n = int(n * seconds / took)
    times = []
    for _ in range(5):
        t = time.perf_counter()
        spin(n)
        times.append(time.perf_counter() - t)
    return n, statistics.median(times)


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def median_of(repeat: int, fn) -> float:
    return statistics.median(timed(fn) for _ in range(repeat))


def w1_submit(pool, n):
    def run():
        futures = [pool.submit(noop, i) for i in range(n)]
        for f in futures:
            f.result()
    return run


def w1_map(pool, n, chunksize):
    def run():
        for _ in pool.map(noop, range(n), chunksize=chunksize):
            pass
    return run


def w2(pool, payloads):
    def run():
        futures = [pool.submit(echo_payload, p) for p in payloads]
        for f in futures:
            assert len(f.result()) == len(payloads[0])
    return run


def w3(pool, n_tasks, loops):
    def run():
        futures = [pool.submit(spin, loops) for _ in range(n_tasks)]
        for f in futures:
            f.result()
    return run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", "--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    args = parser.parse_args(argv)

    n1, n2, size2, n3, ms3 = 10_000, 1_000, 1 << 20, 200, 0.020
    if args.quick:
        n1, n2, size2, n3, ms3 = 500, 20, 64 << 10, 10, 0.002
        args.repeat = 1
    workers = args.workers
    payloads = [os.urandom(size2) for _ in range(min(n2, 16))]
    payloads = [payloads[i % len(payloads)] for i in range(n2)]
    loops, one = calibrate_spin(ms3)
    ideal3 = one * n3 / workers
    ppe_chunk = max(1, math.ceil(n1 / (4 * workers)))
    mib2 = 2 * n2 * size2 / (1 << 20)

    print(f"workers: {workers}, repeat: {args.repeat}, python {sys.version.split()[0]}, "
          f"cpus: {os.cpu_count()}")
    print(f"W3 task: {loops} loops = {one * 1000:.1f} ms serial; ideal {ideal3:.3f} s")

    figures = {}
    for label, make in (("boinc_pymw", lambda: Master("multicore", workers=workers)),
                        ("ProcessPoolExecutor", lambda: cf.ProcessPoolExecutor(workers))):
        with make() as pool:
            list(pool.map(noop, range(100)))  # start and warm up every worker
            w1s = median_of(args.repeat, w1_submit(pool, n1))
            chunk = ppe_chunk if label == "ProcessPoolExecutor" else None
            w1m = median_of(args.repeat, w1_map(pool, n1, chunk))
            w2t = median_of(args.repeat, w2(pool, payloads))
            w3t = median_of(args.repeat, w3(pool, n3, loops))
        figures[label] = {"W1 submit tasks/s": n1 / w1s, "W1 map tasks/s": n1 / w1m,
                          "W2 MiB/s": mib2 / w2t, "W3 efficiency": ideal3 / w3t}

    ours, peer = figures["boinc_pymw"], figures["ProcessPoolExecutor"]
    targets = {"W1 submit tasks/s": 3.0, "W1 map tasks/s": 1.0, "W2 MiB/s": 1.2}
    print(f"{'figure':<20}{'boinc_pymw':>14}{'ProcessPool':>14}{'ratio':>8}  target")
    for key in ours:
        ratio = ours[key] / peer[key]
        if key == "W3 efficiency":
            target = "ours >= 0.95"
            met = ours[key] >= 0.95
        else:
            target = f"ratio >= {targets[key]:g}"
            met = ratio >= targets[key]
        fmt = "{:>14.3f}" if key == "W3 efficiency" else "{:>14,.0f}"
        print(f"{key:<20}" + fmt.format(ours[key]) + fmt.format(peer[key])
              + f"{ratio:>8.2f}  {target} {'met' if met else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
