"""Build the portable Linux runtime: a relocatable Python 3.11 with ``boinc`` built in.

    build_linux_runtime(out_dir) -> RuntimeBuild

Pipeline (no CPython compile: Debian's libpython3.11 is embedded):

    python_main.c + boinc_module.cpp --g++--> python3   (RPATH $ORIGIN, links
                                                         libpython3.11, libboinc_api, libboinc)
    /usr/lib/python3.11/lib-dynload  --pick-->  EXTENSION_MODULES (*.so)
    ldd(python3 + extensions)        --copy-->  lib*.so.N (minus glibc's core)
    /usr/lib/python3.11              --stdlib_zip.py--> python311.zip (.pyc only, pruned)
    boinc_pymw worker files          --stdlib_zip.py--> boinc_pymw.zip
    everything                       --> runtime.json (manifest),
                                         boinc_pymw_runtime.cfg (for the launcher)
                                         and OUT.zip (packed, as the launcher unpacks it)

All files sit in one flat directory, as BOINC keeps an app version's files
side by side in the project directory.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from boinc_pymw.errors import BoincPymwError

from .launcher_build import pack_runtime_archive, write_runtime_config
from .shared_libs import library_closure, minimum_glibc

PLATFORM = "x86_64-pc-linux-gnu"
INTERPRETER_NAME = "python3"
HERE = Path(__file__).resolve().parent
PACKAGE_ROOT = Path(__import__("boinc_pymw").__file__).resolve().parent

SYSTEM_PYTHON = Path("/usr/bin/python3.11")
STDLIB_DIR = Path("/usr/lib/python3.11")
DYNLOAD_DIR = STDLIB_DIR / "lib-dynload"
PYTHON_INCLUDE = Path("/usr/include/python3.11")
BOINC_INCLUDE = Path("/usr/include/boinc")
LIB_DIR = Path("/usr/lib/x86_64-linux-gnu")

# Extension modules not built into Debian's libpython that a worker may want.
# Left out: _ssl/_hashlib (3 MB of OpenSSL; hashlib falls back to built-ins),
# _sqlite3, _curses, readline, _dbm, the CJK codecs and CPython's test modules.
EXTENSION_MODULES = (
    "_asyncio", "_bz2", "_contextvars", "_ctypes", "_decimal", "_json", "_lsprof", "_lzma",
    "_multiprocessing", "_posixshmem", "_queue", "_typing", "_uuid", "_zoneinfo", "mmap",
    "resource", "termios",
)
EXTENSION_SUFFIX = ".cpython-311-x86_64-linux-gnu.so"

# The part of boinc_pymw a volunteer's machine runs (never the server side).
WORKER_FILES = ("__init__.py", "_atomic.py", "errors.py", "checkpoint.py", "worker")
# What boinc_pymw_launcher passes before BOINC's own arguments (launcher/README.md).
WORKER_ARGS = ("-m", "boinc_pymw.worker")


class InterpreterBuildError(BoincPymwError):
    """The runtime could not be built (missing tool or header, or a failed step)."""


@dataclass(frozen=True)
class RuntimeBuild:
    """What :func:`build_linux_runtime` produced."""

    platform: str
    directory: Path        # the unpacked runtime (flat)
    archive: Path          # the packed runtime (zip)
    interpreter: Path      # the executable inside `directory`
    unpacked_bytes: int
    packed_bytes: int


def _require(path: Path, apt_package: str) -> None:
    if not path.exists():
        raise InterpreterBuildError(f"{path} is missing; install the Debian package {apt_package}")


def check_build_tools() -> None:
    _require(SYSTEM_PYTHON, "python3.11")
    _require(PYTHON_INCLUDE / "Python.h", "libpython3.11-dev")
    _require(LIB_DIR / "libpython3.11.so", "libpython3.11-dev")
    _require(BOINC_INCLUDE / "boinc_api.h", "libboinc-app-dev")
    _require(LIB_DIR / "libboinc_api.so", "libboinc-app-dev")
    for tool in ("gcc", "g++", "ldd", "objdump"):
        if shutil.which(tool) is None:
            raise InterpreterBuildError(f"{tool} not found; install build-essential")


def _run(argv: list[str], what: str) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        raise InterpreterBuildError(f"{what} failed ({proc.returncode}):\n{proc.stderr.strip()}")


def compile_interpreter(work: Path, exe: Path) -> None:
    """python_main.c + boinc_module.cpp -> `exe`, finding its libraries via $ORIGIN."""
    main_o, module_o = work / "python_main.o", work / "boinc_module.o"
    # NDEBUG and the prefix map keep source paths of this machine out of the binary.
    common = ["-O2", "-fPIC", "-DNDEBUG", f"-ffile-prefix-map={HERE}=interpreter_build",
              f"-I{PYTHON_INCLUDE}"]
    _run(["gcc", *common, "-c", str(HERE / "python_main.c"),
          "-o", str(main_o)], "compiling python_main.c")
    _run(["g++", "-std=c++17", *common, f"-I{BOINC_INCLUDE}",
          "-c", str(HERE / "boinc_module.cpp"), "-o", str(module_o)],
         "compiling boinc_module.cpp")
    # DT_RPATH (not RUNPATH) so that libraries and dlopen()ed extension
    # modules also find their dependencies beside the executable.
    _run(["g++", str(main_o), str(module_o), "-o", str(exe), f"-L{LIB_DIR}",
          "-lpython3.11", "-lboinc_api", "-lboinc", "-s",
          "-Wl,--disable-new-dtags", "-Wl,-rpath,$ORIGIN"], "linking the interpreter")


def _copy_extensions(dest: Path) -> list[Path]:
    copied = []
    for name in EXTENSION_MODULES:
        src = DYNLOAD_DIR / f"{name}{EXTENSION_SUFFIX}"
        _require(src, "libpython3.11-stdlib")
        shutil.copyfile(src, dest / src.name)
        copied.append(dest / src.name)
    return copied


def _zip_tree(src_dir: Path, out_zip: Path, prefix: str, include: list[str] | None = None) -> None:
    argv = [str(SYSTEM_PYTHON), str(HERE / "stdlib_zip.py"), str(src_dir), str(out_zip),
            "--prefix", prefix]
    for name in include or ():
        argv += ["--include", name]
    _run(argv, f"compiling {out_zip.name}")


def _zip_worker_package(work: Path, out_zip: Path) -> None:
    tree = work / "worker_tree"
    package = tree / "boinc_pymw"
    package.mkdir(parents=True)
    for name in WORKER_FILES:
        src = PACKAGE_ROOT / name
        if src.is_dir():
            shutil.copytree(src, package / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copyfile(src, package / name)
    _zip_tree(tree, out_zip, "boinc_pymw.zip")


def _write_manifest(directory: Path, glibc: str) -> None:
    files = {}
    for path in sorted(directory.iterdir()):
        files[path.name] = {"size": path.stat().st_size, "executable": os.access(path, os.X_OK)}
    manifest = {
        "platform": PLATFORM,
        "interpreter": INTERPRETER_NAME,
        "python": subprocess.run([str(SYSTEM_PYTHON), "-c", "import platform;"
                                  "print(platform.python_version())"], capture_output=True,
                                 text=True, check=True).stdout.strip(),
        "boinc_api": "7.20.5",
        "minimum_glibc": glibc,
        "files": files,
    }
    (directory / "runtime.json").write_text(json.dumps(manifest, indent=2) + "\n")


def _smoke_test(exe: Path) -> None:
    code = "import boinc, json, zlib, decimal, boinc_pymw.worker, boinc_pymw.checkpoint"
    proc = subprocess.run([str(exe), "-c", code], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise InterpreterBuildError(f"the built interpreter does not start:\n{proc.stderr}")


def _prepare_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / "runtime.json").exists():
        raise InterpreterBuildError(
            f"{out_dir} exists and is not a runtime built by boinc_pymw; refusing to overwrite it")


def build_linux_runtime(out_dir: os.PathLike | str) -> RuntimeBuild:
    """Build the x86_64-pc-linux-gnu runtime into `out_dir` and pack it as `out_dir`.zip."""
    if not sys.platform.startswith("linux"):
        raise InterpreterBuildError("the Linux runtime can only be built on Linux")
    out_dir = Path(out_dir).resolve()
    _prepare_out_dir(out_dir)
    check_build_tools()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pymw-runtime-", dir=out_dir.parent) as tmp:
        work = Path(tmp)
        stage = work / "runtime"
        stage.mkdir()
        exe = stage / INTERPRETER_NAME
        compile_interpreter(work, exe)
        extensions = _copy_extensions(stage)
        for soname, src in library_closure([exe, *extensions]).items():
            shutil.copyfile(src, stage / soname)
            os.chmod(stage / soname, 0o644)
        _zip_tree(STDLIB_DIR, stage / "python311.zip", "python311.zip")
        _zip_worker_package(work, stage / "boinc_pymw.zip")
        _smoke_test(exe)
        binaries = [p for p in stage.iterdir() if p.suffix == ".so" or ".so." in p.name]
        write_runtime_config(stage, INTERPRETER_NAME, WORKER_ARGS)
        _write_manifest(stage, minimum_glibc([exe, *binaries]))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(stage, out_dir)
    archive = out_dir.with_name(out_dir.name + ".zip")
    pack_runtime_archive(out_dir, archive)
    return RuntimeBuild(
        platform=PLATFORM,
        directory=out_dir,
        archive=archive,
        interpreter=out_dir / INTERPRETER_NAME,
        unpacked_bytes=sum(p.stat().st_size for p in out_dir.iterdir()),
        packed_bytes=archive.stat().st_size,
    )
