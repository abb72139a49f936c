"""Mean and spread of many normal samples, with numpy in every task.

    python examples/numpy_stats.py -i multicore -n 2 [-t TASKS] [-s SAMPLES]
    python examples/numpy_stats.py -i boinc-local --requirements examples/numpy_requirements.txt

Each task draws ``samples`` numbers from numpy's PCG64 generator (a stream
that is the same on every machine and numpy 1.17+) and returns their sum and
sum of squares; the master combines them. On BOINC volunteers numpy is not
installed: install the app with its requirements, and the app version carries
the wheels (one signed file per platform, unpacked once by the launcher)::

    boinc_pymw install-app --project PROJECT --app numpy_stats --version 1.0 \\
        --code examples/numpy_stats.py --interpreter RUNTIME \\
        --requirements examples/numpy_requirements.txt

The task is referenced as ``numpy_stats:moments``.
"""

import argparse
import math
import time


def moments(samples: int, seed: int) -> list:
    """[sum, sum of squares] of ``samples`` standard normal numbers (rounded, so that
    every BLAS and numpy build agrees to the printed digits)."""
    import numpy as np

    values = np.random.default_rng(seed).standard_normal(samples)
    return [round(float(values.sum()), 6), round(float(np.dot(values, values)), 6)]


def main(argv=None) -> int:
    from boinc_pymw import Master, add_arguments

    # by module name, not as __main__, so a worker elsewhere can import it
    from numpy_stats import moments as task

    parser = add_arguments(argparse.ArgumentParser(description="numpy in every task"))
    parser.add_argument("-t", "--tasks", type=int, default=8, help="number of tasks")
    parser.add_argument("-s", "--samples", type=int, default=200_000, help="numbers per task")
    parser.add_argument("--seed", type=int, default=14, help="seed of the first task")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    with Master.from_args(args) as master:
        parts = list(master.map(task, [args.samples] * args.tasks,
                                range(args.seed, args.seed + args.tasks)))
        interface = master.interface
    total = args.samples * args.tasks
    mean = sum(p[0] for p in parts) / total
    spread = math.sqrt(sum(p[1] for p in parts) / total - mean * mean)
    print(f"mean {mean:.4f}, standard deviation {spread:.4f} of {total:,} normal numbers "
          f"in {args.tasks} tasks")
    print(f"interface {interface}: {time.perf_counter() - started:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
