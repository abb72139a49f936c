"""Estimate pi by throwing random darts at a unit square, in parallel.

    python examples/monte_pi.py -i multicore -n 4 [-t TASKS] [-s SAMPLES]

Each task counts how many of its ``samples`` random points fall inside the
quarter circle; the master adds the counts up. The task function is a plain
module-level function with JSON arguments and result, so the same code runs
on every back end (on BOINC it is referenced as ``monte_pi:count_hits``).
"""

import argparse
import math
import random
import time


def count_hits(samples: int, seed: int) -> int:
    """Points out of ``samples`` that land inside the unit quarter circle."""
    rng = random.Random(seed)
    hits = 0
    for _ in range(samples):
        x, y = rng.random(), rng.random()
        if x * x + y * y <= 1.0:
            hits += 1
    return hits


def main(argv=None) -> int:
    from boinc_pymw import Master, add_arguments

    # Import the task by module name, not as __main__, so back ends that
    # load the function on another machine can find it ("monte_pi:count_hits").
    from monte_pi import count_hits as task

    parser = add_arguments(argparse.ArgumentParser(description="Monte Carlo estimate of pi"))
    parser.add_argument("-t", "--tasks", type=int, default=40, help="number of tasks")
    parser.add_argument("-s", "--samples", type=int, default=250_000, help="points per task")
    parser.add_argument("--seed", type=int, default=2009, help="seed of the first task")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    with Master.from_args(args) as master:
        ready = time.perf_counter()
        futures = [master.submit(task, args.samples, args.seed + i) for i in range(args.tasks)]
        hits = sum(f.result() for f in futures)
        interface, workers = master.interface, master.get_status().get("workers")
    finished = time.perf_counter()

    total = args.tasks * args.samples
    estimate = 4.0 * hits / total
    print(f"pi ~= {estimate:.6f} (error {abs(estimate - math.pi):.6f}) "
          f"from {total:,} points in {args.tasks} tasks")
    print(f"interface {interface}, {workers} workers: {finished - ready:.2f} s computing, "
          f"{finished - started:.2f} s in all")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
