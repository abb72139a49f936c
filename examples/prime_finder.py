"""Count the primes in a range, split into tasks, with Miller-Rabin.

    python examples/prime_finder.py -i multicore -n 4 [--start N] [--stop M] [-t TASKS]

Each task counts the primes in ``[low, high)`` with a deterministic
Miller-Rabin test (exact for every n < 3.3e24); the master adds the counts.
The task function is a plain module-level function with JSON arguments and
result (on BOINC it is referenced as ``prime_finder:count_primes``).
"""

import argparse
import time

# Witnesses that make Miller-Rabin exact below 3,317,044,064,679,887,385,961,981.
_WITNESSES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41)


def is_prime(n: int) -> bool:
    if n < 2:
        return False
    for p in _WITNESSES:
        if n % p == 0:
            return n == p
    d, r = n - 1, 0
    while d % 2 == 0:
        d //= 2
        r += 1
    for a in _WITNESSES:
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(r - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


def count_primes(low: int, high: int) -> int:
    """How many primes lie in ``[low, high)``."""
    return sum(1 for n in range(low, high) if is_prime(n))


def split(start: int, stop: int, parts: int) -> list:
    """``[start, stop)`` as up to ``parts`` consecutive ``[low, high]`` pairs."""
    size = max(1, -(-(stop - start) // parts))
    return [[low, min(low + size, stop)] for low in range(start, stop, size)]


def main(argv=None) -> int:
    from boinc_pymw import Master, add_arguments

    # By module name, not __main__, so remote back ends can import it.
    from prime_finder import count_primes as task

    parser = add_arguments(argparse.ArgumentParser(description="count primes in a range"))
    parser.add_argument("--start", type=int, default=10**12, help="first number")
    parser.add_argument("--stop", type=int, default=10**12 + 400_000, help="end (excluded)")
    parser.add_argument("-t", "--tasks", type=int, default=40, help="number of tasks")
    args = parser.parse_args(argv)
    if args.stop <= args.start:
        parser.error("--stop must be greater than --start")

    started = time.perf_counter()
    with Master.from_args(args) as master:
        ready = time.perf_counter()
        ranges = split(args.start, args.stop, args.tasks)
        count = sum(master.map(task, *zip(*ranges), chunksize=1))
        interface, workers = master.interface, master.get_status().get("workers")
    finished = time.perf_counter()

    print(f"{count} primes in [{args.start:,}, {args.stop:,}) from {len(ranges)} tasks")
    print(f"interface {interface}, {workers} workers: {finished - ready:.2f} s computing, "
          f"{finished - started:.2f} s in all")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
