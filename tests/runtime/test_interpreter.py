"""The portable Linux interpreter: relocatable, self-contained, with `boinc` built in."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from boinc_pymw.cli import main as cli_main

HOST_PYTHON_DIRS = ["/usr/lib/python3*", "/usr/local/lib/python3*", "/root/.pyenv",
                    "/opt/python*", "/work"]
HOST_PYTHON_FILES = ["/usr/lib/x86_64-linux-gnu/libpython3*", "/usr/lib/x86_64-linux-gnu/libboinc*",
                     "/usr/bin/python3*", "/usr/local/bin/python3*"]


def _hidden_host_python_args() -> list[str]:
    """bwrap arguments that cover every Python installation (and BOINC library) of the host."""
    args = []
    here = Path(__file__).resolve()
    for pattern in HOST_PYTHON_DIRS + [str(Path(sys.prefix)), str(here.parents[2])]:
        for path in glob.glob(pattern):
            if os.path.isdir(path) and not os.path.islink(path):
                args += ["--tmpfs", path]
    for pattern in HOST_PYTHON_FILES:
        for path in glob.glob(pattern):
            if os.path.isfile(path) and not os.path.islink(path):
                args += ["--ro-bind", "/dev/null", path]  # symlinks to them then dangle
    return args


def _bwrap_usable() -> str | None:
    if shutil.which("bwrap") is None:
        return "bubblewrap is not installed (scripts/setup.sh installs it)"
    probe = subprocess.run(["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
                            "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"the kernel forbids the namespaces bwrap needs: {probe.stderr.strip()}"
    return None


PROBE = r"""
import sys, os, json, glob, boinc, decimal, ctypes, lzma, bz2, zlib, hashlib, asyncio
import boinc_pymw.worker, boinc_pymw.checkpoint
maps = [l.split()[-1] for l in open('/proc/self/maps') if '/' in l.split()[-1]]
print(json.dumps({
    "version": sys.version_info[:2],
    "sys_path": sys.path,
    "prefix": sys.prefix,
    "mapped_python_or_boinc": sorted({m for m in maps if 'python' in m or 'boinc' in m}),
    "host_stdlib_visible": os.path.exists('/usr/lib/python3.11/os.py'),
    "host_pythons": [p for p in glob.glob('/usr/lib/python3*/*.py')],
    "sha256": hashlib.sha256(b"x").hexdigest()[:8],
    "boinc": sorted(n for n in dir(boinc) if not n.startswith('_')),
}))
"""


def test_runs_where_no_host_python_is_visible(tmp_path, linux_runtime):
    reason = _bwrap_usable()
    if reason:
        pytest.skip(reason)
    runtime = tmp_path / "moved runtime é"  # relocated; a space and non-ASCII in the path
    shutil.copytree(linux_runtime.directory, runtime)
    view = "/tmp/volunteer/runtime"  # inside the sandbox's own /tmp
    argv = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
            "--tmpfs", "/tmp", *_hidden_host_python_args(),
            "--ro-bind", str(runtime), view, "--chdir", "/tmp",
            f"{view}/python3", "-c", PROBE]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    assert seen["version"] == [3, 11]
    assert not seen["host_stdlib_visible"] and not seen["host_pythons"]  # the view works
    assert seen["sys_path"] == [f"{view}/python311.zip", view, f"{view}/boinc_pymw.zip"]
    assert seen["prefix"] == view
    assert seen["mapped_python_or_boinc"] and all(
        m.startswith(view + "/") for m in seen["mapped_python_or_boinc"]), seen
    assert f"{view}/libboinc_api.so.7" in seen["mapped_python_or_boinc"]
    assert seen["sha256"] == "2d711642"
    for name in ("init", "finish", "fraction_done", "time_to_checkpoint", "checkpoint_completed",
                 "resolve_filename", "init_data", "is_standalone"):
        assert name in seen["boinc"]


def test_nothing_points_back_at_the_build_machine(linux_runtime):
    directory = linux_runtime.directory
    for path in directory.iterdir():
        data = path.read_bytes()
        for needle in (str(directory.parent).encode(), b"/root/.pyenv", str(Path.cwd()).encode()):
            assert needle not in data, f"{path.name} mentions {needle!r}"
    dynamic = subprocess.run(["readelf", "-d", str(linux_runtime.interpreter)],
                             capture_output=True, text=True, check=True).stdout
    assert "[$ORIGIN]" in dynamic
    needed = {line.split("[")[1].rstrip("]") for line in dynamic.splitlines() if "(NEEDED)" in line}
    assert {"libpython3.11.so.1.0", "libboinc_api.so.7", "libboinc.so.7"} <= needed
    for soname in needed - {"libc.so.6", "libm.so.6"}:
        assert (directory / soname).is_file(), f"{soname} is not shipped"


def test_manifest_and_launcher_config(linux_runtime):
    manifest = json.loads((linux_runtime.directory / "runtime.json").read_text())
    assert manifest["platform"] == "x86_64-pc-linux-gnu"
    assert manifest["interpreter"] == "python3" and manifest["files"]["python3"]["executable"]
    names = {p.name for p in linux_runtime.directory.iterdir()} - {"runtime.json"}
    assert names == set(manifest["files"])
    config = (linux_runtime.directory / "boinc_pymw_runtime.cfg").read_text().splitlines()
    assert "interpreter = python3" in config and config[-2:] == ["arg = -m", "arg = boinc_pymw.worker"]
    assert linux_runtime.packed_bytes == linux_runtime.archive.stat().st_size


def test_string_hashing_is_the_same_in_every_run(linux_runtime):
    """Replicas on different hosts must agree, even on set iteration order."""
    code = "import sys; print(hash('boinc'), list({'a', 'b', 'c', 'd', 'e'}), sys.flags.hash_randomization)"
    runs = {subprocess.run([str(linux_runtime.interpreter), "-c", code], capture_output=True,
                           text=True, check=True).stdout for _ in range(3)}
    assert len(runs) == 1
    assert runs.pop().split()[-1] == "0"


def test_cli_builds_and_prints_sizes(tmp_path, capsys):
    out = tmp_path / "rt"
    assert cli_main(["build-interpreter", "--platform", "x86_64-pc-linux-gnu", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "unpacked:" in printed and "packed:" in printed
    assert f"({(out.parent / 'rt.zip')})" in printed
    assert (out / "python3").is_file()


def test_cli_refuses_to_overwrite_a_foreign_directory(tmp_path, capsys):
    out = tmp_path / "precious"
    out.mkdir()
    (out / "thesis.tex").write_text("do not lose me")
    status = cli_main(["build-interpreter", "--platform", "x86_64-pc-linux-gnu", "--out", str(out)])
    assert status == 1
    assert "refusing to overwrite" in capsys.readouterr().err
    assert (out / "thesis.tex").read_text() == "do not lose me"
