"""Benchmark the portable Linux runtime: packed size and start-up cost.

    .venv/bin/python benchmarks/bench_runtime.py [--runs 30] [--runtime DIR]

1. Packed size of the x86_64-pc-linux-gnu runtime archive (target < 15 MB).
2. Start-up: boinc_pymw_launcher (started as BOINC starts it, in a slot with a
   soft-link file to the runtime archive) running the interpreter on `pass`,
   against the host's `python3 -c pass`, measured interleaved in the same run;
   the ratio of medians is the figure (target < 1.5x). The first launcher run,
   which unpacks the archive, is reported separately.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from boinc_pymw.interpreter_build.launcher_build import (build_launcher, pack_runtime_archive,
                                                          write_runtime_config)
from boinc_pymw.interpreter_build.linux import INTERPRETER_NAME, build_linux_runtime

SIZE_TARGET = 15e6
RATIO_TARGET = 1.5
# The system interpreter, not a shim (pyenv's is a shell script) that would flatter us.
HOST_PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else shutil.which("python3")


def _timed(argv, cwd) -> float:
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--runtime", type=Path, help="an already built runtime directory")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-runtime-") as tmp:
        tmp = Path(tmp)
        if args.runtime:
            runtime_dir = args.runtime
            archive = tmp / "runtime.zip"
            shutil.copytree(runtime_dir, tmp / "packed")
            pack_runtime_archive(tmp / "packed", archive)
        else:
            build = build_linux_runtime(tmp / "runtime")
            runtime_dir, archive = build.directory, build.archive
        packed = archive.stat().st_size
        unpacked = sum(p.stat().st_size for p in runtime_dir.iterdir())

        # The same runtime, configured to run `pass` instead of the worker.
        variant = tmp / "pass_runtime"
        shutil.copytree(runtime_dir, variant)
        write_runtime_config(variant, INTERPRETER_NAME, ["-c", "pass"])
        project, slot = tmp / "projects" / "bench", tmp / "slots" / "0"
        project.mkdir(parents=True)
        slot.mkdir(parents=True)
        pack_runtime_archive(variant, project / "runtime_pass.zip")
        launcher = build_launcher("x86_64-pc-linux-gnu", tmp / "launcher")
        shutil.copy2(launcher, project / "launcher")
        (slot / "python_runtime.zip").write_text(
            "<soft_link>../../projects/bench/runtime_pass.zip</soft_link>\n")

        launched = ["../../projects/bench/launcher"]
        first = _timed(launched, slot)  # unpacks the archive
        host, ours, direct = [], [], []
        for _ in range(args.runs):
            host.append(_timed([HOST_PYTHON, "-c", "pass"], slot))
            ours.append(_timed(launched, slot))
            direct.append(_timed([str(runtime_dir / INTERPRETER_NAME), "-c", "pass"], slot))

    med_host, med_ours, med_direct = (statistics.median(x) for x in (host, ours, direct))
    ratio = med_ours / med_host
    print(f"runtime size: packed {packed / 1e6:.2f} MB (target < {SIZE_TARGET / 1e6:.0f} MB: "
          f"{'ok' if packed < SIZE_TARGET else 'MISSED'}), unpacked {unpacked / 1e6:.2f} MB")
    print(f"first launch (unpacks the archive): {first * 1e3:.1f} ms")
    print(f"median of {args.runs} starts running `pass`:")
    print(f"  host {HOST_PYTHON} -c pass:        {med_host * 1e3:7.2f} ms")
    print(f"  launcher + portable interpreter: {med_ours * 1e3:7.2f} ms")
    print(f"  portable interpreter alone:      {med_direct * 1e3:7.2f} ms")
    print(f"ratio launcher+interpreter / host python3: {ratio:.2f}x "
          f"(target < {RATIO_TARGET}x: {'ok' if ratio < RATIO_TARGET else 'MISSED'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
