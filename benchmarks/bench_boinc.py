"""The BOINC back ends' own costs, each against a named peer measured in the same run.

  submit   workunits/s that ``Master(interface="boinc").map`` creates (encode,
           stage the input, one create_work per call, one transaction per map)
           vs the toolkit's bulk ``Project.create_batch`` on the same inputs
           (a peer that does no JSON encoding and no reattach bookkeeping)
  local    seconds per workunit of ``-i boinc-local`` (quorum 1, 2 slots) with
           our slot runner and with the real BOINC client, vs the same calls
           on ``-i multicore`` (2 workers): the price of the whole pipeline
           (slot set-up, launcher, portable interpreter start, boinc_finish's
           2 s, validator, assimilator)

Needs MariaDB at 127.0.0.1 (scripts/setup.sh). ``--quick`` uses tiny sizes.

    .venv/bin/python benchmarks/bench_boinc.py
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

from backends.boinc import tasks  # noqa: E402
from boinc_pymw import Master  # noqa: E402


def bench_submit(n: int, work: str) -> None:
    from boinc_pymw.boinc.testing import add_app, make_project
    from boinc_pymw.templates import write_app_templates

    project = make_project(os.path.join(work, "proj"), f"pymw_bench_{os.getpid()}")
    try:
        add_app(project, "benchapp")
        write_app_templates(project, "benchapp", inputs=["input.json"], outputs=["output.json"])
        master = Master(interface="boinc", project=project.path, app="benchapp",
                        batch="bench", poll_interval=3600)
        t0 = time.perf_counter()
        master.map(tasks.square, range(n))
        ours = time.perf_counter() - t0
        master.shutdown(wait=False, cancel_futures=True)
        jobs = [{"files": [(f"peer_{i}.json", b'{"function": "m:f", "args": [%d]}' % i)]}
                for i in range(n)]
        t0 = time.perf_counter()
        project.create_batch(jobs, app="benchapp", batch_name="peer")
        peer = time.perf_counter() - t0
    finally:
        project.drop()
    print(f"submit  {n} calls: boinc back end {n / ours:8.0f} WU/s, "
          f"create_batch {n / peer:8.0f} WU/s, ratio {peer / ours:.2f}")


def bench_local(n: int, work: str) -> None:
    calls = list(range(n))
    t0 = time.perf_counter()
    with Master(interface="multicore", workers=2) as master:
        expected = list(master.map(tasks.square, calls))
    multicore = (time.perf_counter() - t0) / n
    for client in ("builtin", "boinc"):
        if client == "boinc" and not shutil.which("boinc"):
            print("local   (boinc client not installed)")
            continue
        t0 = time.perf_counter()
        with Master(interface="boinc-local", workers=2, quorum=1, client=client,
                    workdir=os.path.join(work, client)) as master:
            assert list(master.map(tasks.square, calls)) == expected
        local = (time.perf_counter() - t0) / n
        print(f"local   {n} calls, client {client:7s}: {local:6.2f} s/WU, multicore "
              f"{multicore * 1000:6.1f} ms/call, ratio {local / multicore:8.0f}x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="bench_boinc_")
    try:
        bench_submit(50 if args.quick else 2000, work)
        # warm the launcher/runtime cache so build time is not counted
        with Master(interface="boinc-local", workers=1, quorum=1, client="builtin",
                    workdir=os.path.join(work, "warm")) as master:
            master.submit(tasks.square, 1).result()
        bench_local(4 if args.quick else 12, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
