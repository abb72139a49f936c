"""Workunits per second: our create_batch vs libsched's create_work in a loop.

Both sides create N workunits (default 5,000) in the same throw-away project
and database, in the same run, each from its own freshly written input file
in download_dir (so both copy it into the fan-out hierarchy, checksum it and
write the .md5 cache) with the same templates. libsched's side is the
oracle program tests/oracle/boinc_oracle.cpp calling BOINC's create_work()
once per workunit, as BOINC's create_work tool does; ours is one
Project.create_batch call. Prints wu/s for each and the ratio (target >= 3x).

    .venv/bin/python benchmarks/bench_create_work.py [--n 5000]
"""

from __future__ import annotations

import argparse
import os
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="workunits per side")
    args = parser.parse_args(argv)
    oracle = boinc_oracle()
    with tempfile.TemporaryDirectory(prefix="bench_cw_") as tmp:
        project = make_project(os.path.join(tmp, "proj"), f"pymw_bench_cw_{os.getpid()}")
        try:
            add_app(project, "bench")
            write_app_templates(project, "bench", inputs=[InputFile("in", copy_file=True)],
                                outputs=[OutputFile("out")], min_quorum=1, target_nresults=1)
            theirs_files = write_inputs(project, "boinc", args.n)
            ours_files = write_inputs(project, "ours", args.n)
            template = os.path.join(project.templates_dir, "bench_in")

            t0 = time.perf_counter()
            done = subprocess.run([str(oracle), "create", project.path, "bench", template,
                                   "templates/bench_out", "boinc", str(args.n), "1", "--",
                                   *theirs_files], capture_output=True, text=True)
            libsched_seconds = time.perf_counter() - t0
            if done.returncode != 0:
                print(done.stderr[-2000:], file=sys.stderr)
                return 1

            t0 = time.perf_counter()
            result = project.create_batch([{"files": [name]} for name in ours_files],
                                          app="bench", batch_name="ours")
            ours_seconds = time.perf_counter() - t0

            counts = project.db.query_one(
                "SELECT SUM(name LIKE 'boinc\\_%%') AS theirs, SUM(batch=%s) AS ours "
                "FROM workunit", (result.batch_id,))
            assert int(counts["theirs"]) == args.n and int(counts["ours"]) == args.n, counts
        finally:
            project.drop()
    theirs_rate, ours_rate = args.n / libsched_seconds, args.n / ours_seconds
    print(f"libsched create_work loop: {args.n} workunits in {libsched_seconds:.2f} s "
          f"= {theirs_rate:,.0f} wu/s")
    print(f"boinc_pymw create_batch:   {args.n} workunits in {ours_seconds:.2f} s "
          f"= {ours_rate:,.0f} wu/s")
    print(f"ratio (ours / libsched): {ours_rate / theirs_rate:.1f}x  (target >= 3x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
