"""Workunits per second: our create_batch vs libsched's create_work in a loop.

Both sides create N workunits (default 5,000) in the same throw-away project
and database, in the same run, each from its own freshly written input file
in download_dir (so both copy it into the fan-out hierarchy, checksum it and
write the .md5 cache) with the same templates. libsched's side is the
oracle program tests/oracle/boinc_oracle.cpp calling BOINC's create_work()
once per workunit, as BOINC's create_work tool does; ours is one
Project.create_batch call. The two sides take turns for a few rounds (new
files and names each round) and the median of each is reported, so that a
burst of load on the machine does not decide the ratio. Prints wu/s for
each and the ratio (target >= 3x).

    .venv/bin/python benchmarks/bench_create_work.py [--n 5000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

from boinc_pymw.boinc.testing import add_app, make_project  # noqa: E402
from boinc_pymw.templates import InputFile, OutputFile, write_app_templates  # noqa: E402
from oracle import boinc_oracle  # noqa: E402


def write_inputs(project, prefix: str, n: int) -> list:
    names = []
    for i in range(n):
        name = f"{prefix}_{i}.in"
        with open(os.path.join(project.download_dir, name), "wb") as f:
            f.write(b"input %d\n" % i * 20)
        names.append(name)
    return names


def run_libsched(oracle, project, template: str, prefix: str, files: list) -> float:
    t0 = time.perf_counter()
    done = subprocess.run([str(oracle), "create", project.path, "bench", template,
                           "templates/bench_out", prefix, str(len(files)), "1", "--", *files],
                          capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"libsched create_work failed: {done.stderr[-2000:]}")
    return seconds


def run_ours(project, prefix: str, files: list) -> float:
    t0 = time.perf_counter()
    project.create_batch([{"files": [name]} for name in files], app="bench", batch_name=prefix)
    return time.perf_counter() - t0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="workunits per side and round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    oracle = boinc_oracle()
    theirs, ours = [], []
    with tempfile.TemporaryDirectory(prefix="bench_cw_") as tmp:
        project = make_project(os.path.join(tmp, "proj"), f"pymw_bench_cw_{os.getpid()}")
        try:
            add_app(project, "bench")
            write_app_templates(project, "bench", inputs=[InputFile("in", copy_file=True)],
                                outputs=[OutputFile("out")], min_quorum=1, target_nresults=1)
            template = os.path.join(project.templates_dir, "bench_in")
            for r in range(args.rounds):
                boinc_files = write_inputs(project, f"boinc{r}", args.n)
                our_files = write_inputs(project, f"ours{r}", args.n)
                sides = [("boinc", boinc_files), ("ours", our_files)]
                for side, files in (sides if r % 2 == 0 else sides[::-1]):
                    if side == "boinc":
                        theirs.append(run_libsched(oracle, project, template, f"boinc{r}", files))
                    else:
                        ours.append(run_ours(project, f"ours{r}", files))
            made = project.db.query_one("SELECT COUNT(*) AS n FROM workunit")["n"]
            assert made == 2 * args.n * args.rounds, made
        finally:
            project.drop()
    theirs_s, ours_s = statistics.median(theirs), statistics.median(ours)
    theirs_rate, ours_rate = args.n / theirs_s, args.n / ours_s
    print(f"{args.n} workunits per side, median of {args.rounds} alternating rounds")
    print(f"libsched create_work loop: {theirs_s:.2f} s = {theirs_rate:,.0f} wu/s  "
          f"(rounds: {', '.join(f'{t:.2f}' for t in theirs)} s)")
    print(f"boinc_pymw create_batch:   {ours_s:.2f} s = {ours_rate:,.0f} wu/s  "
          f"(rounds: {', '.join(f'{t:.2f}' for t in ours)} s)")
    print(f"ratio (ours / libsched): {ours_rate / theirs_rate:.1f}x  (target >= 3x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
