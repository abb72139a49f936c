"""boinc_pymw's MPI back end against mpi4py.futures.MPIPoolExecutor.

One run starts MPI jobs of the same size, one at a time, alternating between
the two pools (--rounds of each), so each pool has the machine to itself (idle
ranks of the other pool would steal CPU) and outside load falls on both alike:

  mpiexec -n N+1 python -m boinc_pymw.backends.mpi bench_mpi.py --role ours
  mpiexec -n N+1 python -m mpi4py.futures          bench_mpi.py --role peer

Rank 0 is the master, ranks 1..N the workers (2 by default). Workloads:

  W1  10,000 no-op tasks: tasks/s via submit, and via map (MPIPoolExecutor.map
      gets chunksize = ceil(n / (4 * workers)); boinc_pymw.map picks its own)
  W2  1,000 tasks with 1 MiB in and 1 MiB out: MiB/s (both directions counted)
  W3  200 tasks of ~20 ms pure-Python CPU: efficiency = ideal time / measured,
      ideal = (serial time of one task, measured once here) * 200 / workers

Each figure is the median over the rounds of the median of --repeat runs
after a warm-up. Target (issue 8):
ratio >= 1 on each. ``--quick`` runs tiny sizes as a smoke test.

    .venv/bin/python benchmarks/bench_mpi.py
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

# benchmarks/ is on sys.path in every process that imports this: run as a
# script, under either launcher's rank 0 (both put the script's directory
# first) and in mpi4py.futures' worker ranks (the same, and run_job's PYTHONPATH).
import _workloads as workloads  # noqa: E402

FIGURES = "FIGURES "


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
    n = max(1, workloads.spin_loops(spin, seconds))
    return n, min(workloads.spin_times(spin, n, 15)[5:])  # after a warm-up; the least disturbed run


def median_of(repeat: int, fn) -> float:
    return statistics.median(workloads.timed(fn) for _ in range(repeat))


def measure(pool, workers: int, repeat: int, quick: bool, loops: int, map_chunk) -> dict:
    """Rank 0 of one MPI job: W1-W3 on ``pool`` (an Executor)."""
    s = workloads.sizes(quick)
    payloads = workloads.make_payloads(s["n2"], s["size2"])
    list(pool.map(noop, range(100)))  # start and warm up every worker
    return {"W1 submit": s["n1"] / median_of(repeat, workloads.w1_submit(pool, noop, s["n1"])),
            "W1 map": s["n1"] / median_of(repeat, workloads.w1_map(pool, noop, s["n1"], map_chunk)),
            "W2": 2 * s["n2"] * s["size2"] / (1 << 20)
                  / median_of(repeat, workloads.w2(pool, echo_payload, payloads)),
            "W3": median_of(repeat, workloads.w3(pool, spin, s["n3"], loops))}


def role_main(args) -> int:
    """What rank 0 runs inside one of the two MPI jobs."""
    chunk = None
    if args.role == "ours":
        from boinc_pymw import Master

        make = lambda: Master("mpi")  # noqa: E731
    else:
        from mpi4py.futures import MPIPoolExecutor

        chunk = max(1, math.ceil(workloads.sizes(args.quick)["n1"] / (4 * args.workers)))
        make = MPIPoolExecutor
    with make() as pool:
        figures = measure(pool, args.workers, args.repeat, args.quick, args.loops, chunk)
    print(FIGURES + json.dumps(figures), flush=True)
    return 0


def run_job(role: str, args, loops: int) -> dict:
    mpiexec = shutil.which("mpiexec")
    if mpiexec is None:
        raise SystemExit("bench_mpi: mpiexec not found (apt-get install mpich)")
    launcher = ["-m", "boinc_pymw.backends.mpi"] if role == "ours" else ["-m", "mpi4py.futures"]
    cmd = [mpiexec, "-n", str(args.workers + 1), sys.executable, *launcher,
           os.path.abspath(__file__), "--role", role, "--workers", str(args.workers),
           "--repeat", str(args.repeat), "--loops", str(loops)] + (["--quick"] if args.quick else [])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.join(HERE, ".."), HERE, os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    lines = [l for l in out.stdout.splitlines() if l.startswith(FIGURES)]
    if out.returncode != 0 or not lines:
        raise SystemExit(f"bench_mpi: the {role} job failed (exit {out.returncode}):\n"
                         f"{out.stdout}\n{out.stderr}")
    return json.loads(lines[-1][len(FIGURES):])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", "--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per job")
    parser.add_argument("--rounds", type=int, default=3,
                        help="MPI jobs per pool, alternating ours and the peer's")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    parser.add_argument("--role", choices=("ours", "peer"), help=argparse.SUPPRESS)
    parser.add_argument("--loops", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.repeat, args.rounds = 1, 1
    if args.role:
        return role_main(args)

    s = workloads.sizes(args.quick)
    loops, one = calibrate_spin(s["s3"])
    ideal3 = one * s["n3"] / args.workers
    print(f"workers: {args.workers}, repeat: {args.repeat}, rounds: {args.rounds}, "
          f"python {sys.version.split()[0]}, cpus: {os.cpu_count()}")
    print(f"W3 task: {loops} loops = {one * 1000:.1f} ms serial; ideal {ideal3:.3f} s")
    # Alternate the two jobs, so that load from elsewhere on the machine
    # falls on both alike; each figure is then the median over the rounds.
    runs = {"ours": [], "peer": []}
    for _ in range(args.rounds):
        for role in ("ours", "peer"):
            runs[role].append(run_job(role, args, loops))
    ours, peer = ({key: statistics.median(r[key] for r in runs[role]) for key in runs[role][0]}
                  for role in ("ours", "peer"))
    for figures in (ours, peer):
        figures["W3"] = ideal3 / figures["W3"]  # seconds -> efficiency
    names = {"W1 submit": "W1 submit tasks/s", "W1 map": "W1 map tasks/s",
             "W2": "W2 MiB/s", "W3": "W3 efficiency"}
    print(workloads.table_header("MPIPoolExec"))
    for key, label in names.items():
        print(workloads.table_row(label, ours[key], peer[key], "ratio >= 1",
                                  ours[key] / peer[key] >= 1, efficiency=key == "W3"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
