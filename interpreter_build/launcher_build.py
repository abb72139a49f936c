"""Build the C++ launcher and pack runtimes in the format it reads.

The launcher (``launcher/``) is the app version's main program. It finds the
runtime archive through the slot's soft-link file for the logical name
:data:`RUNTIME_ARCHIVE_NAME`, unpacks it once next to itself, reads
:data:`RUNTIME_CONFIG_NAME` from the top of the archive and starts the
interpreter named there. :func:`pack_runtime_archive` writes archives the
launcher can read (zip, deflate, Unix modes and symlinks kept, no zip64), so
the Linux and Windows pipelines share one format. ``launcher/README.md``
describes the whole slot layout.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import stat
import subprocess
import tempfile
import zipfile

from ..errors import BoincPymwError

#: Logical name of the runtime archive in the slot (an app-version file).
RUNTIME_ARCHIVE_NAME = "python_runtime.zip"
#: Config at the top of the runtime archive: interpreter path and leading args.
RUNTIME_CONFIG_NAME = "boinc_pymw_runtime.cfg"
#: Platforms the launcher is built for, and the executable name for each.
LAUNCHER_EXECUTABLES = {
    "x86_64-pc-linux-gnu": "boinc_pymw_launcher",
    "windows_x86_64": "boinc_pymw_launcher.exe",
}

_MINGW_COMPILERS = ("x86_64-w64-mingw32-g++-posix", "x86_64-w64-mingw32-g++")


class LauncherBuildError(BoincPymwError):
    """The launcher could not be built (missing tool, unknown platform, compile error)."""


def launcher_source_dir() -> pathlib.Path:
    """Where the launcher's C++ sources and CMakeLists.txt are (shipped in the package)."""
    from .. import launcher as launcher_package

    return pathlib.Path(launcher_package.__file__).resolve().parent


def build_launcher(platform: str, out_dir) -> pathlib.Path:
    """Compile the launcher for ``platform`` and return the executable's path in ``out_dir``.

    ``x86_64-pc-linux-gnu`` uses the native g++; ``windows_x86_64`` uses
    mingw-w64 and links the C++ runtime statically, so the .exe needs no
    mingw DLLs. Raises :class:`LauncherBuildError` with the compiler output
    if a tool is missing or the build fails.
    """
    if platform not in LAUNCHER_EXECUTABLES:
        raise LauncherBuildError(
            f"no launcher for platform {platform!r}; known: {', '.join(sorted(LAUNCHER_EXECUTABLES))}"
        )
    if shutil.which("cmake") is None:
        raise LauncherBuildError("cmake is not installed (Debian: apt-get install cmake)")
    source = launcher_source_dir()
    configure = ["cmake", "-S", str(source), "-DCMAKE_BUILD_TYPE=Release"]
    if platform == "windows_x86_64":
        if not any(shutil.which(c) for c in _MINGW_COMPILERS):
            raise LauncherBuildError(
                "x86_64-w64-mingw32-g++ is not installed (Debian: apt-get install mingw-w64)"
            )
        configure.append(f"-DCMAKE_TOOLCHAIN_FILE={source / 'mingw-w64-x86_64.cmake'}")
    elif shutil.which("g++") is None and shutil.which("c++") is None:
        raise LauncherBuildError("no C++ compiler found (Debian: apt-get install g++)")

    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="boinc_pymw_launcher_build_") as build_dir:
        _run(configure + ["-B", build_dir], "configuring the launcher")
        _run(["cmake", "--build", build_dir, "--parallel", "2"], "compiling the launcher")
        name = LAUNCHER_EXECUTABLES[platform]
        target = out_dir / name
        shutil.copy2(pathlib.Path(build_dir) / name, target)
    return target


def _run(command, what):
    done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if done.returncode != 0:
        raise LauncherBuildError(f"{what} failed ({' '.join(command)}):\n{done.stdout[-4000:]}")


def write_runtime_config(runtime_dir, interpreter: str, args) -> pathlib.Path:
    """Write :data:`RUNTIME_CONFIG_NAME` into ``runtime_dir``.

    ``interpreter`` is relative to the runtime's top with '/' separators
    (``bin/python3``, ``python.exe``); ``args`` come before BOINC's own
    arguments, one argument each, e.g. ``["-m", "boinc_pymw.worker"]``.
    """
    interpreter = str(interpreter)
    if interpreter.startswith("/") or ".." in interpreter.split("/") or "\\" in interpreter:
        raise ValueError(f"interpreter must be a relative '/' path inside the runtime: {interpreter!r}")
    lines = ["# read by boinc_pymw_launcher: the program to start and its leading arguments",
             f"interpreter = {interpreter}"]
    for arg in args:
        arg = str(arg)
        if "\n" in arg or "\r" in arg or arg != arg.strip():
            raise ValueError(f"config arguments cannot have newlines or outer spaces: {arg!r}")
        lines.append(f"arg = {arg}")
    path = pathlib.Path(runtime_dir) / RUNTIME_CONFIG_NAME
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def pack_runtime_archive(runtime_dir, archive) -> pathlib.Path:
    """Zip ``runtime_dir`` into ``archive`` in the form the launcher unpacks.

    Entries are deflated, sorted and dated 1980-01-01 so the same runtime
    always gives the same bytes (BOINC needs a new physical name for new
    content, and reproducible archives make that easy to honour). File modes
    and relative symlinks are kept for Linux runtimes.
    """
    runtime_dir = pathlib.Path(runtime_dir)
    archive = pathlib.Path(archive)
    if not (runtime_dir / RUNTIME_CONFIG_NAME).is_file():
        raise LauncherBuildError(f"{runtime_dir} has no {RUNTIME_CONFIG_NAME}; call write_runtime_config first")
    paths = sorted(p for p in runtime_dir.rglob("*"))
    tmp = archive.with_name(archive.name + ".tmp")
    try:
        _write_zip(runtime_dir, paths, tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if tmp.stat().st_size >= 0x7FFFFFFF:
        tmp.unlink()
        raise LauncherBuildError("runtime archive is larger than 2 GB, which the launcher does not read")
    os.replace(tmp, archive)
    return archive


def pack_tree_archive(tree, archive) -> pathlib.Path:
    """Zip any directory (an app's packages) in the launcher's format, reproducibly."""
    tree, archive = pathlib.Path(tree), pathlib.Path(archive)
    tmp = archive.with_name(archive.name + ".tmp")
    try:
        _write_zip(tree, sorted(tree.rglob("*")), tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if tmp.stat().st_size >= 0x7FFFFFFF:
        tmp.unlink()
        raise LauncherBuildError(f"{archive.name} is larger than 2 GB, which the launcher does not read")
    os.replace(tmp, archive)
    return archive


def _write_zip(runtime_dir: pathlib.Path, paths, target: pathlib.Path) -> None:
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for path in paths:
            name = path.relative_to(runtime_dir).as_posix()
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                link_target = os.readlink(path)
                if os.path.isabs(link_target) or ".." in pathlib.PurePosixPath(link_target).parts:
                    raise LauncherBuildError(f"symlink {path} -> {link_target} leaves the runtime")
                info = _zip_info(name, stat.S_IFLNK | 0o777)
                zf.writestr(info, link_target.encode(), compress_type=zipfile.ZIP_STORED)
            elif stat.S_ISDIR(st.st_mode):
                zf.writestr(_zip_info(name + "/", stat.S_IFDIR | 0o755), b"")
            else:
                info = _zip_info(name, stat.S_IFREG | (st.st_mode & 0o777))
                with open(path, "rb") as src, zf.open(info, "w") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)


def _zip_info(name: str, mode: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.create_system = 3  # Unix, so the launcher honours the mode bits
    info.external_attr = (mode & 0xFFFF) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    return info
