"""Benchmark the portable Linux runtime: packed size and start-up cost.

    .venv/bin/python benchmarks/bench_runtime.py [--runs 30] [--runtime DIR]

1. Packed size of the x86_64-pc-linux-gnu runtime archive (target < 15 MB).
2. Start-up: boinc_pymw_launcher (started as BOINC starts it, in a slot with a
   soft-link file to the runtime archive) running the interpreter on `pass`,
   against the host's `python3 -c pass`, measured interleaved in the same run;
   the ratio of medians is the figure (target < 1.5x). The first launcher run,
   which unpacks the archive, is reported separately.
3. numpy (install-app --requirements): packed size of runtime + numpy wheels
   for Linux; first start (unpacks both) and warm start of the launcher + the
   interpreter importing numpy from the unpacked packages, against the host's
   ``python -c "import numpy"`` (the same numpy version; target < 1.5x); and a
   whole worker task importing numpy, which also pays boinc_finish()'s fixed
   wait (BOINC's API sleeps before it exits). ``--no-numpy`` skips it.
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
    parser.add_argument("--no-numpy", action="store_true", help="skip the numpy figures")
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
        numpy_figures = None if args.no_numpy else _numpy_figures(tmp, runtime_dir, launcher,
                                                                   args.runs)

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
    if numpy_figures:
        _print_numpy(numpy_figures, packed, args.runs)
    return 0


NUMPY_TASK = "import numpy\n\ndef version():\n    return numpy.__version__\n"


def _host_numpy():
    """(python, numpy version) of a host Python that has numpy: this one, else python3."""
    for python in (sys.executable, HOST_PYTHON):
        done = subprocess.run([python, "-c", "import numpy; print(numpy.__version__)"],
                              capture_output=True, text=True)
        if done.returncode == 0:
            return python, done.stdout.strip()
    raise SystemExit("no host Python with numpy to compare with (pip install numpy)")


IMPORT_FROM_PACKAGES = ("import sys; sys.path.append(sys.argv[sys.argv.index('--packages') + 1]); "
                        "import numpy")


def _numpy_figures(tmp: Path, runtime_dir: Path, launcher: Path, runs: int) -> dict:
    """numpy through the launcher (import alone, and a worker task), cold and warm, vs the host."""
    import json
    import os
    import zipfile

    from boinc_pymw.boinc.requirements import resolve_packages

    host_python, version = _host_numpy()
    (tmp / "np").mkdir()
    requirements = tmp / "np" / "requirements.txt"
    requirements.write_text(f"numpy=={version}\n")
    cache = Path(os.environ.get("BOINC_PYMW_TEST_WHEELS")
                 or Path.home() / ".cache" / "boinc_pymw" / "test-wheels")
    packages = resolve_packages(["x86_64-pc-linux-gnu"], requirements, [], cache,
                                tmp / "np")[0]["x86_64-pc-linux-gnu"]
    project, slot = tmp / "projects" / "np", tmp / "slots" / "1"
    project.mkdir(parents=True)
    slot.mkdir(parents=True)
    shutil.copy2(launcher, project / "launcher")
    pack_runtime_archive(runtime_dir, project / "runtime.zip")
    variant = tmp / "import_runtime"      # the runtime running `import numpy` instead of the worker
    shutil.copytree(runtime_dir, variant)
    write_runtime_config(variant, INTERPRETER_NAME, ["-c", IMPORT_FROM_PACKAGES])
    pack_runtime_archive(variant, project / "runtime_import.zip")
    shutil.copy2(packages.archive, project / packages.archive.name)
    with zipfile.ZipFile(project / "code.zip", "w") as zf:
        zf.writestr("bench_np.py", NUMPY_TASK)
    (project / "job.json").write_text(json.dumps({"function": "bench_np:version", "args": []}))
    for logical, physical in (("python_runtime.zip", "runtime.zip"), ("app_code.zip", "code.zip"),
                              ("python_packages.zip", packages.archive.name),
                              ("input.json", "job.json"), ("output.json", "out.json")):
        (slot / logical).write_text(f"<soft_link>../../projects/np/{physical}</soft_link>\n")
    launched = ["../../projects/np/launcher"]
    importing = launched + ["--launcher-runtime=python_runtime_import.zip"]
    (slot / "python_runtime_import.zip").write_text(
        "<soft_link>../../projects/np/runtime_import.zip</soft_link>\n")
    first = _timed(importing, slot)    # unpacks the runtime and numpy
    _timed(launched, slot)
    answer = json.loads((project / "out.json").read_text())
    if answer != {"ok": True, "value": version}:
        raise SystemExit(f"the numpy task went wrong: {answer}")
    host, ours, task = [], [], []
    for i in range(runs):
        host.append(_timed([host_python, "-c", "import numpy"], slot))
        ours.append(_timed(importing, slot))
        if i < 5:
            task.append(_timed(launched, slot))
    return {"version": version, "host_python": host_python, "first": first,
            "packages_bytes": packages.archive.stat().st_size,
            "wheel_bytes": sum(w.size for w in packages.wheels),
            "host": statistics.median(host), "ours": statistics.median(ours),
            "task": statistics.median(task)}


def _print_numpy(f: dict, runtime_bytes: int, runs: int) -> None:
    ratio = f["ours"] / f["host"]
    print(f"numpy {f['version']} packed (one file per platform): {f['packages_bytes'] / 1e6:.2f} MB "
          f"(wheel {f['wheel_bytes'] / 1e6:.2f} MB); runtime + numpy "
          f"{(runtime_bytes + f['packages_bytes']) / 1e6:.2f} MB to download once")
    print(f"first start of a numpy task (unpacks runtime and numpy): {f['first'] * 1e3:.0f} ms")
    print(f"median of {runs} warm starts:")
    print(f"  host {f['host_python']} -c 'import numpy':     {f['host'] * 1e3:7.2f} ms")
    print(f"  launcher + portable interpreter, import numpy:  {f['ours'] * 1e3:7.2f} ms")
    print(f"  whole worker task importing numpy (median of 5; "
          f"includes boinc_finish's wait): {f['task'] * 1e3:7.1f} ms")
    print(f"ratio launcher+interpreter import numpy / host import numpy: {ratio:.2f}x "
          f"(target < {RATIO_TARGET}x: {'ok' if ratio < RATIO_TARGET else 'MISSED'})")


if __name__ == "__main__":
    sys.exit(main())
