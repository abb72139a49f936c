"""What PyMW's data_files cost on ``-i boinc``, against the same calls without them.

``submit_task(count_in_file, (word,), data_files=[F])`` one call at a time (as a
PyMW script does), F shared by every call, vs ``submit_task(count_in_file,
(word,))`` measured in the same run on the same project: each call with a data
file also reads the app's templates, builds its own input template and has
create-work look at the staged file (already there after the first call).
Prints the median of ``--repeats`` runs per size and the ratio to the peer.

Needs MariaDB at 127.0.0.1 (scripts/setup.sh).

    .venv/bin/python benchmarks/bench_data_files.py [--calls 200] [--sizes 1,20] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

from backends.boinc import tasks  # noqa: E402
from boinc_pymw import Master  # noqa: E402


def per_call(project, batch: str, calls: int, data_file: str | None) -> float:
    """Seconds per submit_task call."""
    master = Master(interface="boinc", project=project.path, app="benchapp", batch=batch,
                    poll_interval=3600, results_dir=os.path.join(project.path, "store"))
    files = [data_file] if data_file else []
    t0 = time.perf_counter()
    for i in range(calls):
        master.submit_task(tasks.count_in_file, (f"w{i}",), data_files=files)
    elapsed = time.perf_counter() - t0
    master.shutdown(wait=False, cancel_futures=True)
    return elapsed / calls


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--sizes", default="1,20", help="data file sizes in MB")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import logging

    logging.getLogger("boinc_pymw").setLevel(logging.ERROR)   # no results-store warnings
    from boinc_pymw.boinc.testing import add_app, make_project
    from boinc_pymw.templates import write_app_templates

    work = tempfile.mkdtemp(prefix="bench_data_files_")
    project = make_project(os.path.join(work, "proj"), f"pymw_bench_df_{os.getpid()}")
    try:
        add_app(project, "benchapp")
        write_app_templates(project, "benchapp", inputs=["input.json"], outputs=["output.json"])
        print(f"load average {os.getloadavg()[0]:.1f}; {args.calls} submit_task calls per run, "
              f"median of {args.repeats}")
        print("| data file | ms per call | peer (no data file), ms | ratio |")
        print("| --- | --- | --- | --- |")
        for size in [float(s) for s in args.sizes.split(",")]:
            path = os.path.join(work, f"data_{size:g}MB.txt")
            with open(path, "wb") as f:
                f.write(os.urandom(int(size * 1e6)))
            ours, peer = [], []
            for r in range(args.repeats):      # alternate, so both see the same load
                peer.append(per_call(project, f"peer_{size:g}_{r}", args.calls, None))
                ours.append(per_call(project, f"data_{size:g}_{r}", args.calls, path))
            o, p = statistics.median(ours), statistics.median(peer)
            print(f"| {size:g} MB | {o * 1e3:.2f} | {p * 1e3:.2f} | {o / p:.2f} |")
    finally:
        project.drop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
