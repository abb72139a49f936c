"""The app version the local debug mode runs: what install-app would ship.

Three files (four with requirements), with the logical names of ``launcher/README.md`` and
``boinc_pymw/boinc/app_install.py``::

    launcher (C++, built once, cached)      main program
    portable runtime zip (built once)       python_runtime.zip
    the task code zip (per code set)        app_code.zip
    the app's wheels, packed (per input)    python_packages.zip  (requirements=)

Physical names carry an MD5 prefix of the content, so a changed runtime or
changed task code is a new file (BOINC files are immutable). Builds are
cached under ``cache_dir`` (default ``~/.cache/boinc_pymw/local``), keyed by
the sources they come from.

Alternatively an installed app version directory (``apps/NAME/X.Y/PLATFORM``
of a project, or any such directory) is used as it is.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path
from typing import Iterable, Optional, Sequence

from ...boinc.md5 import file_md5
from ...local.slots import SlotError, SlotFile, app_version_files
from ...errors import BoincPymwError
from ...worker.entry_points import is_standard_module

PLATFORM = "x86_64-pc-linux-gnu"
RUNTIME_ARCHIVE_NAME = "python_runtime.zip"
CODE_ARCHIVE_NAME = "app_code.zip"
PACKAGES_ARCHIVE_NAME = "python_packages.zip"

_build_lock = threading.Lock()


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "boinc_pymw" / "local"


def _sources_digest(paths: Iterable[Path]) -> str:
    digest = hashlib.md5()
    for root in paths:
        root = Path(root)
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in files:
            if "__pycache__" in path.parts or path.suffix == ".pyc":
                continue
            digest.update(str(path.relative_to(root.parent)).encode() + b"\0")
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _named_copy(source: Path, stem: str, suffix: str, directory: Path) -> Path:
    """``source`` copied to ``directory/<stem>_<md5 prefix><suffix>`` (once)."""
    target = directory / f"{stem}_{file_md5(source)[:12]}{suffix}"
    if not target.exists():
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        shutil.copy2(source, tmp)
        os.replace(tmp, target)
    return target


def portable_runtime(cache_dir: Path) -> Path:
    """The packed portable Linux runtime (``boinc_pymw build-interpreter``), cached."""
    import boinc_pymw
    from boinc_pymw.interpreter_build import linux

    package = Path(boinc_pymw.__file__).resolve().parent
    key = _sources_digest([package / name for name in linux.WORKER_FILES]
                          + [Path(linux.__file__).resolve().parent])
    out = cache_dir / f"runtime-{PLATFORM}-{key}"
    archive = out.with_name(out.name + ".zip")
    with _build_lock:
        if not archive.is_file():
            cache_dir.mkdir(parents=True, exist_ok=True)
            work = Path(tempfile.mkdtemp(prefix=".runtime-", dir=cache_dir))
            try:
                build = linux.build_linux_runtime(work / "rt")
                os.replace(build.archive, archive)
            finally:
                shutil.rmtree(work, ignore_errors=True)
    return archive


def launcher(cache_dir: Path) -> Path:
    """The C++ launcher for this platform, cached (install-app's cache logic)."""
    from ...boinc.app_install import cached_launcher

    with _build_lock:
        return cached_launcher(cache_dir, PLATFORM)


def code_roots_of(modules: Iterable[str]) -> list[Path]:
    """Files/directories to put into app_code.zip so ``modules`` import on a worker.

    The top-level package (its directory) or module (its file) of each; the
    boinc_pymw package itself is part of the runtime and left out.
    """
    roots: dict[str, Path] = {}
    for module in modules:
        top = module.split(".")[0]
        if top in roots or top == "boinc_pymw":
            continue
        if is_standard_module(top):
            raise BoincPymwError(
                f"cannot ship module {module!r}: it belongs to Python's standard library, and "
                "volunteers run only the app's own functions; wrap the call in a function of "
                "your own module")
        spec = importlib.util.find_spec(top)
        if spec is None or not spec.origin or spec.origin in ("built-in", "frozen"):
            raise BoincPymwError(f"cannot ship module {module!r}: it has no source file")
        origin = Path(spec.origin)
        if spec.submodule_search_locations:
            roots[top] = origin.parent
        else:
            roots[top] = origin
    return list(roots.values())


def code_archive(code_paths: Sequence[Path], cache_dir: Path) -> Optional[Path]:
    """app_code.zip for ``code_paths`` (reproducible: same code, same name)."""
    if not code_paths:
        return None
    from ...boinc.app_install import pack_code

    out_dir = cache_dir / "code"
    out_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".code-", suffix=".zip", dir=out_dir)
    os.close(fd)
    try:
        pack_code(code_paths, Path(tmp))
        return _named_copy(Path(tmp), "app_code", ".zip", out_dir)
    finally:
        os.unlink(tmp)


def packages_archive(requirements: Optional[Path], wheels: Sequence[Path],
                     cache_dir: Path) -> Optional[Path]:
    """The app's packages for this platform (install-app's requirements.py), packed once
    per set of inputs and cached: the same wheels volunteers would get."""
    from ...boinc.requirements import (RequirementsError, inputs_digest, resolve_packages,
                                        write_lock)

    if not requirements and not wheels:
        return None
    files_dir = cache_dir / "files"
    files_dir.mkdir(parents=True, exist_ok=True)
    try:
        digest = inputs_digest(Path(requirements) if requirements else None,
                               [Path(w) for w in wheels])[:16]
        lock_path = cache_dir / "locks" / f"{digest}.lock.json"
        packed_name = cache_dir / "locks" / f"{digest}.packages"
        with _build_lock:
            if packed_name.is_file():
                known = files_dir / packed_name.read_text().strip()
                if known.is_file():
                    return known
            sets, lock, _ = resolve_packages([PLATFORM], requirements, wheels,
                                             cache_dir / "wheels", files_dir, lock_path,
                                             {PLATFORM: {}})
            write_lock(lock_path, lock)
            packed_name.write_text(sets[PLATFORM].archive.name + "\n")
            return sets[PLATFORM].archive
    except RequirementsError as exc:
        raise BoincPymwError(str(exc)) from None


def built_app_version(code_paths: Sequence[Path], cache_dir: Optional[Path] = None,
                      runtime_zip: Optional[Path] = None, requirements: Optional[Path] = None,
                      wheels: Sequence[Path] = ()) -> tuple[str, list[SlotFile]]:
    """(main program, files) of an app version made of launcher + runtime + code
    (+ the packages of ``requirements``/``wheels``)."""
    if not sys.platform.startswith("linux"):
        raise BoincPymwError("the local debug mode builds its app version on Linux only; "
                             "pass app_version= an installed app version directory")
    cache_dir = Path(cache_dir or default_cache_dir())
    files_dir = cache_dir / "files"
    files_dir.mkdir(parents=True, exist_ok=True)
    exe = _named_copy(launcher(cache_dir), "boinc_pymw_launcher", "", files_dir)
    os.chmod(exe, 0o755)
    runtime = _named_copy(Path(runtime_zip) if runtime_zip else portable_runtime(cache_dir),
                          "boinc_pymw_runtime", ".zip", files_dir)
    files = [SlotFile(exe.name, exe),
             SlotFile(runtime.name, runtime, RUNTIME_ARCHIVE_NAME)]
    code = code_archive(code_paths, cache_dir)
    if code is not None:
        files.append(SlotFile(code.name, code, CODE_ARCHIVE_NAME))
    packages = packages_archive(requirements, wheels, cache_dir)
    if packages is not None:
        files.append(SlotFile(packages.name, packages, PACKAGES_ARCHIVE_NAME))
    return exe.name, files


def installed_app_version(version_dir: Path) -> tuple[str, list[SlotFile]]:
    """(main program, files) of an app version directory, as update_versions reads it."""
    try:
        return app_version_files(version_dir)
    except SlotError as exc:
        raise BoincPymwError(str(exc)) from None


def latest_installed_version(project_dir: Path, app: str, platform: str = PLATFORM) -> Optional[Path]:
    """``apps/<app>/<X.Y>/<platform>`` with the highest version number, if any."""
    base = Path(project_dir) / "apps" / app
    best = None
    if not base.is_dir():
        return None
    for version in base.iterdir():
        candidate = version / platform
        if not candidate.is_dir():      # install-app's PLATFORM__CLASS (plan class) directory
            candidate = next(iter(sorted(version.glob(f"{platform}__*"))), candidate)
        major, dot, minor = version.name.partition(".")
        if not (dot and major.isdigit() and minor.isdigit() and candidate.is_dir()):
            continue
        num = int(major) * 100 + int(minor)
        if best is None or num > best[0]:
            best = (num, candidate)
    return best[1] if best else None
