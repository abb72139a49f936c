"""An app's third-party packages (numpy and the like) as one signed app version file.

``install-app --requirements FILE --wheel PATH`` (and ``-i boinc-local`` with
``requirements=``) turn pip requirement lines and local wheels into, per
target platform, one zip that the launcher unpacks next to the runtime::

    requirements + local wheels --pip download, binary wheels only, for the
    |                              runtime's CPython 3.11 and the platform's tags
    v                              (Linux: manylinux up to the runtime's glibc;
  wheels (cache: <cache>/<sha256>/<file>)   Windows: win_amd64)
    |   lock: {platform: [name, version, file, sha256, size]}; an unchanged
    |   input re-uses it (same wheels by hash), so the same inputs give the same bytes
    v
  wheels unpacked into one flat tree (purelib and platlib at the top)
    --> boinc_pymw_packages_<platform>_<sha256 of the zip>[:16].zip  (reproducible)

The zip is named after its content: an unchanged package set keeps its name
across app versions, and BOINC clients, which keep files by name, download it
once. Nothing here writes outside a temporary directory until everything
resolved; a failure leaves the cache without partial files.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence

from ..errors import BoincPymwError
from ..worker.entry_points import is_standard_module
from ..worker.packages import PACKAGES_ARCHIVE_NAME

__all__ = ["RequirementsError", "LockedWheel", "PackageSet", "resolve_packages",
           "PACKAGES_ARCHIVE_NAME", "LOCK_NAME"]

#: The lock's name inside the signed code zip and in the lock store.
LOCK_NAME = "boinc_pymw_requirements.lock.json"
LOCK_FORMAT = 1
#: The packed set's listing at the top of the packages zip (the launcher checks it).
LISTING_NAME = "boinc_pymw_packages.json"
PYTHON_VERSION = (3, 11)
DEFAULT_GLIBC = "2.36"
_WHEEL = re.compile(r"(?P<name>[^-]+)-(?P<version>[^-]+)(-(?P<build>\d[^-]*))?-(?P<py>[^-]+)"
                    r"-(?P<abi>[^-]+)-(?P<plat>[^-]+)\.whl")
_MANYLINUX = re.compile(r"manylinux_(\d+)_(\d+)_x86_64")
_LEGACY_MANYLINUX = {"manylinux1_x86_64": (2, 5), "manylinux2010_x86_64": (2, 12),
                     "manylinux2014_x86_64": (2, 17)}
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


class RequirementsError(BoincPymwError):
    """The packages cannot be resolved or packed; nothing was installed."""


@dataclass(frozen=True)
class LockedWheel:
    """One wheel of a resolved package set, as the lock records it."""

    name: str
    version: str
    filename: str
    sha256: str
    size: int

    def as_dict(self) -> dict:
        return {"name": self.name, "version": self.version, "filename": self.filename,
                "sha256": self.sha256, "size": self.size}


@dataclass
class PackageSet:
    """The packed packages of one platform."""

    platform: str
    wheels: list            # LockedWheel, sorted by name
    archive: Path           # the zip to ship (named after its content)

    @property
    def modules(self) -> list[str]:
        """Top-level importable names the set provides."""
        with zipfile.ZipFile(self.archive) as zf:
            listing = json.loads(zf.read(LISTING_NAME))
        return listing["modules"]


# -- platforms and tags -------------------------------------------------------------------
def _glibc(platform: str, runtime_manifest: Mapping) -> tuple[int, int]:
    text = str(runtime_manifest.get("minimum_glibc") or DEFAULT_GLIBC)
    major, _, minor = text.partition(".")
    try:
        return int(major), int(minor)
    except ValueError:
        return 2, 36


def pip_platforms(platform: str, runtime_manifest: Mapping = None) -> list[str]:
    """pip's ``--platform`` values for a BOINC platform's runtime."""
    if platform == "windows_x86_64":
        return ["win_amd64"]
    if platform == "x86_64-pc-linux-gnu":
        major, minor = _glibc(platform, runtime_manifest or {})
        tags = [f"manylinux_{major}_{m}_x86_64" for m in range(minor, 4, -1)]
        return tags + list(_LEGACY_MANYLINUX)
    raise RequirementsError(f"no packages for platform {platform!r}")


def _platform_ok(tag: str, platform: str, glibc: tuple[int, int]) -> bool:
    if tag == "any":
        return True
    if platform == "windows_x86_64":
        return tag == "win_amd64"
    match = _MANYLINUX.fullmatch(tag)
    needed = (int(match.group(1)), int(match.group(2))) if match else _LEGACY_MANYLINUX.get(tag)
    return needed is not None and needed <= glibc


def _python_ok(py: str, abi: str) -> bool:
    major, minor = PYTHON_VERSION
    if abi not in ("none", "abi3", f"cp{major}{minor}"):
        return False
    if py in ("py3", f"py{major}{minor}", f"cp{major}{minor}"):
        return True
    match = re.fullmatch(r"(py|cp)3(\d+)", py)
    if match and int(match.group(2)) <= minor:
        return match.group(1) == "py" or abi == "abi3"
    return False


def check_wheel_file(path: Path, platform: str, runtime_manifest: Mapping = None) -> tuple[str, str]:
    """(name, version) of a wheel the platform's runtime can use, else RequirementsError."""
    match = _WHEEL.fullmatch(path.name)
    if not match:
        raise RequirementsError(f"{path.name} is not a wheel file name (name-version-py-abi-platform.whl)")
    glibc = _glibc(platform, runtime_manifest or {})
    pys, abis, plats = (match.group(g).split(".") for g in ("py", "abi", "plat"))
    if not any(_python_ok(p, a) for p in pys for a in abis):
        raise RequirementsError(
            f"{path.name} is for {'.'.join(pys)}/{'.'.join(abis)}, but the runtime is CPython "
            f"{PYTHON_VERSION[0]}.{PYTHON_VERSION[1]} (cp311): use a cp311, abi3 or py3 wheel")
    if not any(_platform_ok(p, platform, glibc) for p in plats):
        want = ("win_amd64" if platform == "windows_x86_64"
                else f"manylinux up to glibc {glibc[0]}.{glibc[1]}, x86_64")
        raise RequirementsError(f"{path.name} is for {'.'.join(plats)}, not {platform} ({want})")
    return _canonical(match.group("name")), match.group("version")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# -- resolving -----------------------------------------------------------------------------
def inputs_digest(requirements: Optional[Path], wheels: Sequence[Path]) -> str:
    """What the lock was made from: the requirement lines and the local wheels' bytes."""
    digest = hashlib.sha256()
    if requirements is not None:
        digest.update(b"requirements\0" + Path(requirements).read_bytes() + b"\0")
    for wheel in sorted(wheels, key=lambda p: Path(p).name):
        digest.update(b"wheel\0" + Path(wheel).name.encode() + b"\0" + _sha256(Path(wheel)).encode())
    return digest.hexdigest()


def _pip(args: list[str], what: str) -> None:
    command = [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--no-input",
               "--progress-bar", "off", "--disable-pip-version-check", *args]
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RequirementsError(f"{what}: {_explain_pip_failure(proc.stdout + proc.stderr)}")


def _explain_pip_failure(output: str) -> str:
    missing = re.search(r"No matching distribution found for (\S+)", output)
    if missing:
        return (f"no binary wheel of {missing.group(1)} for this platform and CPython 3.11; "
                "boinc-pymw ships wheels only and never builds a source distribution "
                "(sdist): pin a version that has a wheel, or pass one with --wheel")
    conflict = re.search(r"(Cannot install .*?conflicting dependencies\.|"
                         r"ResolutionImpossible.*)", output, re.S)
    if conflict or "conflict" in output.lower():
        lines = [l.strip() for l in output.splitlines()
                 if "conflict" in l.lower() or "requested" in l or "depends on" in l]
        return "conflicting requirements: " + "; ".join(lines[:8])
    hashes = re.search(r"THESE PACKAGES DO NOT MATCH THE HASHES.*", output, re.S)
    if hashes:
        return "a download does not match its expected sha256 (corrupt, truncated or changed):\n" \
            + hashes.group(0)[:1500]
    errors = [l for l in output.splitlines() if l.startswith("ERROR") or "Error" in l]
    return "pip download failed: " + ("\n".join(errors[-6:]) or output[-1500:])


def _cache_wheel(source: Path, cache_dir: Path) -> tuple[Path, str]:
    """Copy a verified wheel into the cache (atomically); its cached path and sha256."""
    sha = _sha256(source)
    target = cache_dir / sha / source.name
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        shutil.copyfile(source, tmp)
        if _sha256(tmp) != sha:
            tmp.unlink()
            raise RequirementsError(f"{source.name} changed while it was copied into the cache")
        os.replace(tmp, target)
    return target, sha


def _locked_wheels(paths: Iterable[Path], platform: str, runtime_manifest: Mapping,
                   cache_dir: Path) -> list[tuple[LockedWheel, Path]]:
    found = {}
    for path in paths:
        if path.suffix != ".whl":
            raise RequirementsError(f"pip fetched {path.name}, which is not a wheel")
        name, version = check_wheel_file(path, platform, runtime_manifest)
        cached, sha = _cache_wheel(path, cache_dir)
        if name in found:
            raise RequirementsError(f"two wheels of {name}: {found[name][0].filename} and {path.name}")
        found[name] = (LockedWheel(name, version, path.name, sha, cached.stat().st_size), cached)
    return [found[n] for n in sorted(found)]


def resolve_platform(platform: str, requirements: Optional[Path], wheels: Sequence[Path],
                     cache_dir: Path, locked: Optional[list] = None,
                     runtime_manifest: Mapping = None) -> list[tuple[LockedWheel, Path]]:
    """The wheels for ``platform``: from the lock when given, else resolved by pip."""
    runtime_manifest = runtime_manifest or {}
    for wheel in wheels:
        check_wheel_file(Path(wheel), platform, runtime_manifest)
    tags = []
    for tag in pip_platforms(platform, runtime_manifest):
        tags += ["--platform", tag]
    target = ["--python-version", f"{PYTHON_VERSION[0]}.{PYTHON_VERSION[1]}",
              "--implementation", "cp", "--abi", f"cp{PYTHON_VERSION[0]}{PYTHON_VERSION[1]}", *tags]
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".download-", dir=cache_dir) as tmp:
        work = Path(tmp)
        if locked is not None:
            return _from_lock(platform, locked, wheels, cache_dir, work, target, runtime_manifest)
        args = ["--dest", str(work / "wheels"), *target]
        if requirements is not None:
            args += ["-r", str(requirements)]
        args += [str(Path(w).resolve()) for w in wheels]
        _pip(args, f"resolving the packages for {platform}")
        fetched = sorted((work / "wheels").iterdir()) if (work / "wheels").is_dir() else []
        return _locked_wheels(fetched, platform, runtime_manifest, cache_dir)


def _from_lock(platform, locked, wheels, cache_dir, work, target, runtime_manifest):
    local = {_sha256(Path(w)): Path(w) for w in wheels}
    result, missing = [], []
    for entry in locked:
        wheel = LockedWheel(**{k: entry[k] for k in ("name", "version", "filename", "sha256", "size")})
        cached = cache_dir / wheel.sha256 / wheel.filename
        if cached.is_file():
            result.append((wheel, cached))
        elif wheel.sha256 in local:
            result.append((wheel, _cache_wheel(local[wheel.sha256], cache_dir)[0]))
        else:
            missing.append(wheel)
    if missing:
        pins = work / "locked.txt"
        pins.write_text("".join(f"{w.name}=={w.version} --hash=sha256:{w.sha256}\n" for w in missing))
        _pip(["--dest", str(work / "wheels"), "--no-deps", "--require-hashes", "-r", str(pins),
              *target], f"fetching the locked packages for {platform}")
        fetched = {p.name: p for p in (work / "wheels").iterdir()}
        for wheel in missing:
            path = fetched.get(wheel.filename)
            if path is None or _sha256(path) != wheel.sha256:
                raise RequirementsError(f"the lock names {wheel.filename} (sha256 {wheel.sha256[:16]}...), "
                                        "which the index no longer offers; delete the lock to resolve anew")
            result.append((wheel, _cache_wheel(path, cache_dir)[0]))
    for wheel, _ in result:
        check_wheel_file(Path(wheel.filename), platform, runtime_manifest)
    return sorted(result, key=lambda item: item[0].name)


# -- packing ---------------------------------------------------------------------------------
def _unpack_wheel(wheel: Path, tree: Path, owners: dict) -> None:
    """Install ``wheel`` into ``tree`` as pip would into site-packages (no scripts)."""
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            name = info.filename
            if info.is_dir():
                continue
            parts = name.split("/")
            if name.startswith("/") or ".." in parts or "\\" in name:
                raise RequirementsError(f"{wheel.name}: unsafe file name {name!r}")
            if len(parts) > 2 and parts[0].endswith(".data"):
                if parts[1] not in ("purelib", "platlib"):
                    continue    # scripts, headers, data: not importable, not shipped
                parts = parts[2:]
            rel = "/".join(parts)
            if rel in owners:
                raise RequirementsError(f"{wheel.name} and {owners[rel]} both hold {rel}")
            owners[rel] = wheel.name
            dest = tree.joinpath(*parts)
            dest.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(dest, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            mode = (info.external_attr >> 16) & 0o777
            os.chmod(dest, 0o755 if mode & 0o111 else 0o644)


def _python311() -> Optional[str]:
    """A CPython 3.11 to compile with (the runtimes' version: same bytecode magic)."""
    if sys.version_info[:2] == PYTHON_VERSION:
        return sys.executable
    return shutil.which(f"python{PYTHON_VERSION[0]}.{PYTHON_VERSION[1]}")


def precompile(tree: Path) -> None:
    """Compile every .py of the tree to __pycache__ once, here: the runtime never writes
    bytecode on volunteers' machines, so without it each task would compile numpy again.
    Unchecked-hash pycs with tree-relative names keep the zip reproducible."""
    python = _python311()
    if python is None:
        raise RequirementsError(f"no CPython {PYTHON_VERSION[0]}.{PYTHON_VERSION[1]} here to "
                                "compile the packages with (Debian: apt-get install python3.11)")
    proc = subprocess.run([python, "-m", "compileall", "-q", "-j", "0", "-s", str(tree), "-p", "",
                           "--invalidation-mode", "unchecked-hash", str(tree)],
                          capture_output=True, text=True)
    if proc.returncode not in (0, 1):   # 1: some file did not compile (a test fixture): harmless
        raise RequirementsError(f"compiling the packages failed: {proc.stderr[-1500:]}")


def _top_level_modules(tree: Path) -> list[str]:
    from ..worker.packages import carried_modules

    return sorted(carried_modules(tree))


def pack_packages(platform: str, wheels: Sequence[tuple[LockedWheel, Path]], out_dir: Path) -> PackageSet:
    """One reproducible zip of the wheels, named after its content, in ``out_dir``."""
    from ..interpreter_build.launcher_build import pack_tree_archive

    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".pack-", dir=out_dir) as tmp:
        tree = Path(tmp) / "tree"
        tree.mkdir()
        owners: dict = {}
        for _, path in wheels:
            _unpack_wheel(path, tree, owners)
        precompile(tree)
        modules = _top_level_modules(tree)
        clashing = [m for m in modules if is_standard_module(m)]
        if clashing:
            raise RequirementsError(f"the packages hold a module named {clashing[0]!r}, which would "
                                    "hide the standard library's or the runtime's module of that name")
        listing = {"platform": platform, "modules": modules,
                   "packages": [w.as_dict() for w, _ in wheels]}
        (tree / LISTING_NAME).write_text(json.dumps(listing, indent=1, sort_keys=True) + "\n")
        packed = pack_tree_archive(tree, Path(tmp) / "packages.zip")
        name = f"boinc_pymw_packages_{platform}_{_sha256(packed)[:16]}.zip"
        target = out_dir / name
        os.replace(packed, target)
    return PackageSet(platform, [w for w, _ in wheels], target)


# -- the lock ---------------------------------------------------------------------------------
def lock_document(digest: str, sets: Mapping[str, Sequence[LockedWheel]]) -> dict:
    return {"format": LOCK_FORMAT, "inputs_sha256": digest,
            "python": f"{PYTHON_VERSION[0]}.{PYTHON_VERSION[1]}",
            "platforms": {p: [w.as_dict() for w in sets[p]] for p in sorted(sets)}}


def lock_bytes(document: Mapping) -> bytes:
    return (json.dumps(document, indent=1, sort_keys=True) + "\n").encode()


def read_lock(path: Path) -> Optional[dict]:
    """A lock file's document, or None when there is none (a broken one is an error)."""
    if not path.is_file():
        return None
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RequirementsError(f"lock file {path} is unreadable: {exc}; delete it to resolve anew") from None
    if not isinstance(document, dict) or document.get("format") != LOCK_FORMAT \
            or not isinstance(document.get("platforms"), dict):
        raise RequirementsError(f"{path} is not a format-{LOCK_FORMAT} lock; delete it to resolve anew")
    return document


def resolve_packages(platforms: Sequence[str], requirements: Optional[os.PathLike],
                     wheels: Sequence[os.PathLike], cache_dir: Path, out_dir: Path,
                     lock_path: Optional[Path] = None,
                     runtime_manifests: Mapping[str, Mapping] = None) -> tuple[dict, dict, bool]:
    """Resolve and pack for every platform.

    Returns ({platform: PackageSet}, lock document, whether the lock was re-used).
    The lock at ``lock_path`` is used when it was made from the same inputs and
    covers every platform; the caller stores the new one when all went well.
    """
    requirements = Path(requirements) if requirements else None
    wheels = [Path(w) for w in wheels]
    if requirements is not None and not requirements.is_file():
        raise RequirementsError(f"--requirements {requirements}: no such file")
    for wheel in wheels:
        if not wheel.is_file():
            raise RequirementsError(f"--wheel {wheel}: no such file")
    runtime_manifests = runtime_manifests or {}
    digest = inputs_digest(requirements, wheels)
    old = read_lock(lock_path) if lock_path is not None else None
    same_inputs = bool(old and old.get("inputs_sha256") == digest)
    reuse = same_inputs and all(p in old["platforms"] for p in platforms)
    resolved = {}
    for platform in platforms:
        locked = old["platforms"].get(platform) if same_inputs else None
        resolved[platform] = resolve_platform(
            platform, requirements, wheels, cache_dir, locked, runtime_manifests.get(platform))
        if not resolved[platform]:
            raise RequirementsError(f"no packages resolved for {platform}: the requirements are empty")
    sets = {p: pack_packages(p, resolved[p], out_dir) for p in platforms}
    lock = lock_document(digest, {p: [w for w, _ in resolved[p]] for p in platforms})
    if same_inputs:   # keep platforms of the old lock this run did not need
        for platform, entries in old["platforms"].items():
            lock["platforms"].setdefault(platform, entries)
    return sets, lock, reuse


def write_lock(path: Path, document: Mapping) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(lock_bytes(document))
    os.replace(tmp, path)


# -- install-app's use ----------------------------------------------------------------------
#: Under the project's apps/ (update_versions skips dot names): wheel cache and locks.
WHEEL_CACHE = ".boinc_pymw_wheels"
LOCK_STORE = ".boinc_pymw_locks"


def lock_path_for(project_dir: Path, app_name: str) -> Path:
    return Path(project_dir) / "apps" / LOCK_STORE / f"{app_name}.{LOCK_NAME}"


def _megabytes(nbytes: int) -> str:
    return f"{nbytes / 1e6:.1f} MB"


def prepare_packages(project_dir: Path, app_name: str, platforms: Sequence[str],
                     requirements, wheels, work: Path, runtime_manifests: Mapping, report):
    """install-app: resolve and pack into ``work``; adds the packed table to ``report``.

    Returns ({platform: PackageSet}, lock document). Raises InstallError."""
    from .app_install import InstallError

    lock_path = lock_path_for(project_dir, app_name)
    try:
        sets, lock, reused = resolve_packages(
            platforms, requirements, wheels, Path(project_dir) / "apps" / WHEEL_CACHE, work,
            lock_path, runtime_manifests)
    except RequirementsError as exc:
        raise InstallError(str(exc)) from None
    for platform in platforms:
        package_set = sets[platform]
        for wheel in package_set.wheels:
            report.add(f"package {wheel.name} {wheel.version} ({platform})",
                       f"packed ({_megabytes(wheel.size)} wheel)")
        report.add(f"{package_set.archive.name}",
                   f"{_megabytes(package_set.archive.stat().st_size)}, logical name "
                   f"{PACKAGES_ARCHIVE_NAME}")
    report.add(f"lock apps/{LOCK_STORE}/{lock_path.name}",
               "re-used (same inputs)" if reused else "resolved anew")
    return sets, lock


def store_lock(project_dir: Path, app_name: str, lock: Mapping, report=None) -> None:
    """Keep the lock for the next install of the app (written after a successful install)."""
    path = lock_path_for(project_dir, app_name)
    if path.is_file() and path.read_bytes() == lock_bytes(lock):
        return
    write_lock(path, lock)


def packed_table(sets: Mapping[str, PackageSet]) -> str:
    """package, version, size per platform: what install-app and boinc-local print."""
    rows = [("platform", "package", "version", "size")]
    for platform, package_set in sorted(sets.items()):
        rows += [(platform, w.name, w.version, _megabytes(w.size)) for w in package_set.wheels]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)
