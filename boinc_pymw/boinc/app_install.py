"""Install a boinc-pymw app version into a BOINC project (``boinc_pymw install-app``).

What BOINC's ``update_versions`` does for a directory ``apps/NAME/X.Y/PLATFORM/``,
done in Python for the files boinc-pymw ships, plus the app and platform
rows update_versions expects someone else to have added::

    launcher (built once per project, cached) --+
    interpreter dir or zip  --pack--------------+--> staging dir: files, .sig, version.xml
    --code files / package  --zip (reproducible)+          |
                                                           v
        checks, all before anything is written: existing app_version rows (same
        xml_doc = nothing to do, other xml_doc = error), download_dir names
        (same name + other bytes = error), apps/ and templates/ contents
                                                           |
                                                           v
        copy new files into download_dir, apps/ and templates/ under temporary names
        --> one DB transaction: give the files their real names (never replacing
            one), then insert the app, platform and app_version rows
        --> COMMIT; on any error: ROLLBACK and remove what this run created
        --> touch reread_db (the feeder reloads apps)

The app version's files (the layout of ``launcher/README.md``):

* ``NAME_X.Y_PLATFORM`` (``.exe`` on Windows): the C++ launcher, main program;
* ``boinc_pymw_runtime_PLATFORM_<md5>.zip``, logical name ``python_runtime.zip``:
  the interpreter and its libraries;
* ``NAME_X.Y_code.zip``, logical name ``app_code.zip``: the user's task code,
  which the worker puts on sys.path.

The runtime archive is named after its content, so every app and version that
ships the same interpreter shares one download.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import stat
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence
from xml.sax.saxutils import escape

from ..errors import BoincPymwError
from ..names import BadName, check_app_name
from . import signing
from .md5 import file_md5
from .project_files import DIR_MODE, FILE_MODE, make_project_dir

#: The BOINC API version the portable interpreter links (Debian bookworm's libboinc_api).
DEFAULT_API_VERSION = "7.20.5"
#: Logical name of the user's code zip; the worker puts it on sys.path (worker/runner.py).
CODE_ARCHIVE_NAME = "app_code.zip"
#: Logical names of a task's job and answer files (the worker's defaults).
JOB_INPUT_NAME = "input.json"
JOB_OUTPUT_NAME = "output.json"
#: Logical name of the runtime archive (the launcher looks it up; launcher/README.md).
RUNTIME_ARCHIVE_NAME = "python_runtime.zip"
RUNTIME_CONFIG_NAME = "boinc_pymw_runtime.cfg"
RUNTIME_MANIFEST_NAME = "runtime.json"

#: Platforms boinc-pymw can build an app version for, with BOINC's user-friendly names.
PLATFORMS = {
    "x86_64-pc-linux-gnu": "Linux running on an AMD x86_64 or Intel EM64T CPU",
    "windows_x86_64": "Microsoft Windows running on an AMD x86_64 or Intel EM64T CPU",
}

_VERSION = re.compile(r"(\d{1,6})\.(\d{1,2})")
_LAUNCHER_CACHE = ".boinc_pymw_launchers"  # under apps/; update_versions skips dot names
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


class InstallError(BoincPymwError):
    """The app version cannot be installed; nothing was changed."""


class ImmutableFileError(InstallError):
    """A file of that name already exists with other bytes (BOINC files are immutable)."""


# -- the app version's description ------------------------------------------------------
@dataclass(frozen=True)
class AppVersionFile:
    """One file of an app version, as version.xml and the xml_doc describe it."""

    physical_name: str
    source: Path                 # where its bytes are now
    logical_name: str = ""
    main_program: bool = False
    copy_file: bool = False
    executable: bool = False     # u+x in the app directory (update_versions -> <executable/>)


@dataclass(frozen=True)
class SignedFile:
    file: AppVersionFile
    nbytes: int
    md5: str
    signature: Optional[str]     # None for --unsigned test projects


def parse_version(text: str) -> int:
    """BOINC's version number for a directory name "X.Y": 100*X + Y."""
    match = _VERSION.fullmatch(text.strip())
    if not match:
        raise InstallError(f"version {text!r}: expected X.Y, e.g. 1.0 or 1.02 (version_num = 100*X + Y)")
    return 100 * int(match.group(1)) + int(match.group(2))


def _check_app_name(name: str) -> None:
    try:
        check_app_name(name)
    except BadName as exc:
        raise InstallError(str(exc)) from None


def check_platform(platform: str) -> None:
    if platform not in PLATFORMS:
        raise InstallError(f"unknown platform {platform!r}; boinc_pymw builds app versions for "
                           f"{', '.join(sorted(PLATFORMS))}")


# -- documents -------------------------------------------------------------------------------
def render_version_xml(files: Sequence[AppVersionFile], api_version: Optional[str]) -> str:
    """version.xml for the app directory (``app_templates/version.xml.j2``)."""
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(loader=PackageLoader("boinc_pymw.app_templates", "."),
                      undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False)
    return env.get_template("version.xml.j2").render(files=files, api_version=api_version) + "\n"


def build_xml_doc(app_name: str, version_num: int, files: Sequence[SignedFile],
                  download_url: str, api_version: Optional[str]) -> str:
    """The ``app_version.xml_doc`` update_versions writes for these files, in its layout.

    One ``<file_info>`` per file (name, url, executable, file_signature,
    nbytes), then ``<app_version>`` with app_name, version_num, api_version
    and a ``<file_ref>`` per file, in the order of version.xml.
    """
    out = []
    for f in files:
        out.append("<file_info>\n")
        out.append(f"    <name>{escape(f.file.physical_name)}</name>\n")
        out.append(f"    <url>{escape(download_url)}/{escape(f.file.physical_name)}</url>\n")
        if f.file.executable or f.file.main_program:
            out.append("    <executable/>\n")
        if f.signature is not None:
            out.append("    <file_signature>\n")
            out.append(f.signature)
            out.append("    </file_signature>\n")
        out.append(f"    <nbytes>{f.nbytes}</nbytes>\n")
        out.append("</file_info>\n")
    out.append("<app_version>\n")
    out.append(f"    <app_name>{escape(app_name)}</app_name>\n")
    out.append(f"    <version_num>{version_num}</version_num>\n")
    if api_version:
        out.append(f"    <api_version>{escape(api_version)}</api_version>\n")
    for f in files:
        out.append("<file_ref>\n")
        out.append(f"    <file_name>{escape(f.file.physical_name)}</file_name>\n")
        if f.file.logical_name:
            out.append(f"    <open_name>{escape(f.file.logical_name)}</open_name>\n")
        if f.file.copy_file:
            out.append("    <copy_file/>\n")
        if f.file.main_program:
            out.append("    <main_program/>\n")
        out.append("</file_ref>\n")
    out.append("</app_version>\n")
    return "".join(out)


# -- inputs: code, runtime, launcher -------------------------------------------------------
def _zip_info(name: str, mode: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
    info.create_system = 3
    info.external_attr = (mode & 0xFFFF) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def _code_entries(paths: Iterable[os.PathLike]) -> dict[str, Path]:
    """Archive name -> file for ``--code``: packages keep their name, files go to the top."""
    entries: dict[str, Path] = {}

    def add(name: str, path: Path) -> None:
        if name in entries and entries[name] != path:
            raise InstallError(f"--code: {entries[name]} and {path} would both be {name!r} in the code zip")
        entries[name] = path

    def wanted(path: Path) -> bool:
        return not (path.name.startswith(".") or path.name == "__pycache__" or path.suffix == ".pyc")

    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise InstallError(f"--code: {path} does not exist")
        if path.is_file():
            add(path.name, path.resolve())
            continue
        # a package keeps its directory name; a plain folder contributes its contents
        prefix = path.resolve().name + "/" if (path / "__init__.py").is_file() else ""
        for file in sorted(path.rglob("*")):
            rel = file.relative_to(path)
            if not all(wanted(Path(part)) for part in rel.parts) or not file.is_file():
                continue
            add(prefix + rel.as_posix(), file.resolve())
    if not entries:
        raise InstallError("--code: no files found")
    return entries


def pack_code(paths: Iterable[os.PathLike], archive: Path, entry_points: Optional[Sequence[str]] = None,
              carried_modules: Iterable[str] = (), documents: Optional[Mapping[str, bytes]] = None) -> Path:
    """Zip the user's task code reproducibly (same files -> same bytes), with the
    manifest of its entry points (boinc/entry_points.py: ``entry_points`` if
    declared, else its public top-level functions) and ``documents`` such as the
    requirements lock, so that all of it is signed with the code."""
    from .entry_points import MANIFEST_NAME, EntryPointRefused, build_manifest, manifest_bytes

    paths = list(paths)
    entries = _code_entries(paths) if paths or not documents else {}
    sources = {name: path.read_bytes() for name, path in entries.items()}
    documents = dict(documents or {})
    for name in [MANIFEST_NAME, *documents]:
        if name in sources:
            raise InstallError(f"--code: {name} is a name boinc_pymw writes into the code zip itself")
    try:
        manifest = build_manifest(sources, entry_points, carried_modules)
    except EntryPointRefused as exc:
        raise InstallError(str(exc)) from None
    documents[MANIFEST_NAME] = manifest_bytes(manifest)
    sources.update(documents)
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name in sorted(sources):
            zf.writestr(_zip_info(name, 0o100644), sources[name])
    return archive


def _runtime_source(interpreter: Optional[os.PathLike], platform: str, n_platforms: int) -> Path:
    """The runtime (a directory with boinc_pymw_runtime.cfg, or its zip) for ``platform``."""
    hint = (f"build one with: boinc_pymw build-interpreter --platform {platform} --out DIR, "
            f"then pass --interpreter DIR")
    if interpreter is None:
        raise InstallError(f"missing interpreter for {platform}: {hint}")
    base = Path(interpreter)
    if not base.exists():
        raise InstallError(f"missing interpreter: {base} does not exist; {hint}")
    candidates = [base / platform, base / f"{platform}.zip"]
    if n_platforms == 1:
        candidates.append(base)
    for candidate in candidates:
        if candidate.is_dir() and (candidate / RUNTIME_CONFIG_NAME).is_file():
            return candidate
        if candidate.is_file() and candidate.suffix == ".zip":
            with contextlib.suppress(zipfile.BadZipFile):
                with zipfile.ZipFile(candidate) as zf:
                    if RUNTIME_CONFIG_NAME in zf.namelist():
                        return candidate
    where = " or ".join(str(c) for c in candidates)
    raise InstallError(f"missing interpreter for {platform}: no {RUNTIME_CONFIG_NAME} in {where}; {hint}")


def _runtime_manifest(source: Path) -> dict:
    """The runtime's runtime.json (platform, boinc_api, ...), or {} if it has none."""
    import json

    try:
        if source.is_dir():
            text = (source / RUNTIME_MANIFEST_NAME).read_text(encoding="utf-8")
        else:
            with zipfile.ZipFile(source) as zf:
                text = zf.read(RUNTIME_MANIFEST_NAME).decode("utf-8")
        manifest = json.loads(text)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return {}
    return manifest if isinstance(manifest, dict) else {}


def _check_runtime_platform(source: Path, platform: str) -> None:
    built_for = _runtime_manifest(source).get("platform")
    if built_for and built_for != platform:
        raise InstallError(f"the interpreter {source} was built for {built_for}, not {platform}")


def _pack_runtime(source: Path, out: Path) -> Path:
    if source.is_file():
        shutil.copyfile(source, out)
        return out
    from ..interpreter_build.launcher_build import pack_runtime_archive

    return pack_runtime_archive(source, out)


def _launcher_source_digest() -> str:
    from ..interpreter_build.launcher_build import launcher_source_dir

    digest = hashlib.md5()
    root = launcher_source_dir()
    for path in sorted(root.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def cached_launcher(project_dir: Path, platform: str) -> Path:
    """The launcher for ``platform``, built once per project and launcher source.

    Compilers are not reproducible (a PE header carries a time stamp), and
    BOINC files are immutable: reusing one build keeps a second install-app
    run byte-identical to the first.
    """
    from ..interpreter_build.launcher_build import LAUNCHER_EXECUTABLES, build_launcher

    cache = project_dir / "apps" / _LAUNCHER_CACHE / f"{platform}-{_launcher_source_digest()}"
    target = cache / LAUNCHER_EXECUTABLES[platform]
    if not target.is_file():
        make_project_dir(cache.parent)
        with tempfile.TemporaryDirectory(prefix=".build-", dir=cache.parent) as build_dir:
            built = build_launcher(platform, build_dir)
            make_project_dir(cache)
            os.replace(built, target)
    return target


# -- the report -------------------------------------------------------------------------------
@dataclass
class InstallReport:
    """What install-app did, one line per thing, printed as a short table."""

    rows: list = field(default_factory=list)   # (what, outcome)
    app_version_ids: dict = field(default_factory=dict)   # platform -> id

    def add(self, what: str, outcome: str) -> None:
        self.rows.append((what, outcome))

    @property
    def changed(self) -> bool:
        return any(not outcome.startswith(("unchanged", "kept", "already")) for _, outcome in self.rows)

    def table(self) -> str:
        width = max((len(w) for w, _ in self.rows), default=0)
        return "\n".join(f"{what.ljust(width)}  {outcome}" for what, outcome in self.rows)


# -- the plan: everything checked before anything is written -----------------------------------
@dataclass
class _PlatformPlan:
    platform: str
    app_dir: Path                       # apps/NAME/X.Y/PLATFORM
    staging_dir: Path                   # its complete contents, in the work dir
    signed: list
    xml_doc: str
    existing_id: Optional[int] = None   # app_version row with the same xml_doc
    plan_class: str = ""                # app_version.plan_class; app_dir ends in __CLASS


def _same_tree(a: Path, b: Path) -> bool:
    def listing(root: Path):
        return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))
    names = listing(a)
    if names != listing(b):
        return False
    return all((a / n).is_dir() or file_md5(a / n) == file_md5(b / n) for n in names)


class _Undo:
    """Paths this run created, removed again if the install does not complete."""

    def __init__(self):
        self.paths: list[tuple[Path, bool]] = []

    def created(self, path: Path, *, empty_dir: bool = False) -> None:
        """``path`` is new; an ``empty_dir`` is only removed while still empty."""
        self.paths.append((path, empty_dir))

    def run(self) -> None:
        for path, empty_dir in reversed(self.paths):
            with contextlib.suppress(FileNotFoundError):
                if empty_dir:
                    with contextlib.suppress(OSError):
                        path.rmdir()
                elif path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()


def _check_key_is_private(key_path: Path) -> None:
    """Refuse a private key others may read, as ssh does: it may have leaked."""
    mode = stat.S_IMODE(key_path.stat().st_mode)
    if mode & 0o077:
        raise InstallError(
            f"the private key {key_path} is readable by its group or others (mode "
            f"{mode:04o}); a signing key must be private to its owner: chmod 600 {key_path} "
            f"(and consider it leaked if others could read it)")


def _project_public_key(config, key_path: Path, private_key):
    """The project's code_sign_public, which must be the public half of ``private_key``:
    clients check every signature against it, and refuse files signed otherwise."""
    public_path = Path(config.key_dir) / "code_sign_public"
    if not public_path.is_file():
        raise InstallError(
            f"{public_path} does not exist: the scheduler sends that key to clients, which "
            f"check every signature with it. Copy the public half of {key_path} there "
            f"(or generate the project's keys with 'boinc_pymw keys generate {config.key_dir}')")
    public_key = signing.read_public_key(public_path)
    if private_key.public_key().public_numbers() != public_key.public_numbers():
        raise InstallError(
            f"the signing key {key_path} does not match the project's {public_path}: every "
            f"client would refuse the files (RSA key check failed, -120). Sign with the "
            f"private half of that public key")
    return public_key


def _make_dirs(path: Path, undo: _Undo) -> None:
    """mkdir -p (0771, as BOINC) that lets ``undo`` remove the directories it made."""
    for directory in make_project_dir(path):
        undo.created(Path(directory), empty_dir=True)


def _open_up(tree: Path) -> None:
    """Directories 0771 and files 0644 (executables 0755) in an app version's tree:
    the staging area is private (0700), the installed version must not be."""
    for root, dirs, files in os.walk(tree):
        os.chmod(root, DIR_MODE)
        for name in files:
            path = os.path.join(root, name)
            os.chmod(path, 0o755 if os.stat(path).st_mode & 0o100 else FILE_MODE)


def _temp_name(directory: Path, name: str) -> Path:
    return directory / f".{name}.boinc_pymw-{os.getpid()}-{time.monotonic_ns()}"


def install_app(project, app_name: str, version: str, platforms: Sequence[str] = ("x86_64-pc-linux-gnu",),
                *, code: Sequence[os.PathLike] = (), interpreter: Optional[os.PathLike] = None,
                sign_with: Optional[os.PathLike] = None, unsigned: bool = False,
                launchers: Optional[Mapping[str, os.PathLike]] = None,
                api_version: Optional[str] = None, user_friendly_name: Optional[str] = None,
                input_template: Optional[str] = None, result_template: Optional[str] = None,
                plan_class: Optional[str] = None, glibc_floor: bool = True,
                entry_points: Optional[Sequence[str]] = None,
                requirements: Optional[os.PathLike] = None, wheels: Sequence[os.PathLike] = (),
                ) -> InstallReport:
    """Build, sign, stage and register app version ``version`` of ``app_name``.

    ``project`` is a :class:`~boinc_pymw.boinc.project.Project`. ``launchers``
    maps platform -> a prebuilt launcher (default: build once per project).
    ``input_template``/``result_template`` are the texts for
    ``templates/NAME_in``/``NAME_out`` (default: one input ``input.json``,
    one output ``output.json``, the worker's job files); each is written
    only if that file does not exist yet. Raises :class:`InstallError` (or
    the database's error) with nothing changed; running it again with the
    same inputs changes nothing.

    ``entry_points`` (``pkg.mod:name`` each) are the only functions a workunit
    may call; by default the public top-level functions of ``code``
    (boinc/entry_points.py). ``requirements`` (a pip requirements file) and
    ``wheels`` are packed per platform into one more signed file
    (boinc/requirements.py).
    """
    _check_app_name(app_name)
    version_num = parse_version(version)
    platforms = list(dict.fromkeys(platforms or ()))
    if not platforms:
        raise InstallError("no platform given")
    for platform in platforms:
        check_platform(platform)
    if unsigned and sign_with:
        raise InstallError("--unsigned and --sign-with exclude each other")

    project_dir = Path(project.path)
    config = project.config
    download_dir, download_url = Path(config.download_dir), config.download_url
    if not download_url:
        raise InstallError(f"{project_dir}/config.xml has no <download_url>")
    if not download_dir.is_dir():
        raise InstallError(f"download_dir {download_dir} does not exist")

    private_key = public_key = None
    if not unsigned:
        key_path = Path(sign_with) if sign_with else Path(config.key_dir) / "code_sign_private"
        if not key_path.is_file():
            raise InstallError(
                f"no code-signing key: {key_path} does not exist. Create the project's keys with "
                f"'boinc_pymw keys generate {config.key_dir}', or pass --sign-with KEY "
                f"(or --unsigned for a test project whose clients allow unsigned apps)")
        _check_key_is_private(key_path)
        private_key = signing.read_private_key(key_path)
        public_key = _project_public_key(config, key_path, private_key)

    runtimes = {p: _runtime_source(interpreter, p, len(platforms)) for p in platforms}
    for platform, source in runtimes.items():
        _check_runtime_platform(source, platform)
    launchers = dict(launchers or {})
    for platform, path in launchers.items():
        if platform not in platforms:
            raise InstallError(f"a launcher is given for {platform}, which is not among the "
                               f"platforms to install ({', '.join(platforms)})")
        if not Path(path).is_file():
            raise InstallError(f"launcher for {platform}: {path} does not exist")

    classes = _plan_classes(platforms, runtimes, plan_class, glibc_floor)

    db = project.db
    db.query("SELECT 1")   # a database that is down fails here, before any work
    report = InstallReport()

    apps_root = project_dir / "apps"
    make_project_dir(apps_root)
    with tempfile.TemporaryDirectory(prefix=".install-", dir=apps_root) as work_dir:
        work = Path(work_dir)
        code_zip = None
        packages, lock, carried = {}, None, set()
        if requirements or wheels:
            from .requirements import prepare_packages

            packages, lock = prepare_packages(
                project_dir, app_name, platforms, requirements, wheels, work,
                {p: _runtime_manifest(runtimes[p]) for p in platforms}, report)
            carried = {m for package_set in packages.values() for m in package_set.modules}
        if code or lock or entry_points:
            from .requirements import LOCK_NAME, lock_bytes

            documents = {LOCK_NAME: lock_bytes(lock)} if lock else {}
            code_zip = pack_code(code, work / f"{app_name}_{version}_code.zip", entry_points,
                                 carried, documents)

        plans = []
        for platform in platforms:
            plans.append(_prepare_platform(
                project_dir, work, app_name, version, version_num, platform, runtimes[platform],
                launchers.get(platform), code_zip, private_key, public_key, download_url,
                api_version, packages.get(platform)))

        for plan in plans:      # update_versions' PLATFORM__CLASS directory
            plan.plan_class = classes[plan.platform][0]
            if plan.plan_class:
                plan.app_dir = plan.app_dir.with_name(f"{plan.platform}__{plan.plan_class}")

        app_row = db.query_one("SELECT id FROM app WHERE name=%s", (app_name,))
        platform_rows = {p: db.query_one("SELECT id FROM platform WHERE name=%s", (p,))
                         for p in platforms}
        for plan in plans:
            _check_existing_version(db, plan, app_row, platform_rows[plan.platform], app_name,
                                    version, version_num)
        new_plans = [p for p in plans if p.existing_id is None]
        to_stage = _check_download_dir(download_dir, new_plans)
        for plan in new_plans:
            if plan.app_dir.exists() and not _same_tree(plan.staging_dir, plan.app_dir):
                raise InstallError(
                    f"{plan.app_dir} already exists with other files, and the database has no such "
                    f"app version; remove that directory or use a new version number")
        templates = _check_templates(project_dir, app_name, input_template, result_template)

        spec_change = _plan_spec_change(project_dir, classes, db)
        try:
            spec_change.write()      # before the rows: a version never names an unknown class
            _apply(project, db, report, app_name, version, version_num, user_friendly_name,
                   app_row, platform_rows, plans, new_plans, to_stage, templates)
        except BaseException:
            spec_change.undo()
            raise
        for name, outcome in spec_change.outcomes:
            report.add(f"plan_class_spec.xml {name}", outcome)
    if lock:
        from .requirements import store_lock

        store_lock(project_dir, app_name, lock, report)
    return report


def _prepare_platform(project_dir, work, app_name, version, version_num, platform, runtime_source,
                      launcher, code_zip, private_key, public_key, download_url, api_version,
                      packages=None):
    from ..interpreter_build.launcher_build import LAUNCHER_EXECUTABLES

    stage = work / platform
    stage.mkdir()
    suffix = Path(LAUNCHER_EXECUTABLES[platform]).suffix
    launcher_src = Path(launcher) if launcher else cached_launcher(project_dir, platform)
    launcher_name = f"{app_name}_{version}_{platform}{suffix}"
    shutil.copyfile(launcher_src, stage / launcher_name)
    os.chmod(stage / launcher_name, 0o755)

    packed = _pack_runtime(runtime_source, work / f"runtime-{platform}.zip")
    runtime_name = f"boinc_pymw_runtime_{platform}_{file_md5(packed)[:12]}.zip"
    os.replace(packed, stage / runtime_name)

    files = [AppVersionFile(launcher_name, stage / launcher_name, main_program=True, executable=True),
             AppVersionFile(runtime_name, stage / runtime_name, logical_name=RUNTIME_ARCHIVE_NAME)]
    if code_zip is not None:
        shutil.copyfile(code_zip, stage / code_zip.name)
        files.append(AppVersionFile(code_zip.name, stage / code_zip.name,
                                    logical_name=CODE_ARCHIVE_NAME))
    if packages is not None:   # the app's wheels (requirements.py); the launcher unpacks them
        from .requirements import PACKAGES_ARCHIVE_NAME

        os.replace(packages.archive, stage / packages.archive.name)
        files.append(AppVersionFile(packages.archive.name, stage / packages.archive.name,
                                    logical_name=PACKAGES_ARCHIVE_NAME))
    for f in files:
        if not f.executable:
            os.chmod(f.source, 0o644)

    api = api_version or _runtime_manifest(runtime_source).get("boinc_api") or DEFAULT_API_VERSION
    signed = []
    for f in files:
        md5 = file_md5(f.source)
        signature = None
        if private_key is not None:
            signature = signing.sign_md5(md5, private_key)
            if public_key is not None and not signing.verify_md5(md5, signature, public_key):
                raise InstallError("the code-signing private key does not match the project's "
                                   "code_sign_public; clients would reject every file")
            (stage / f"{f.physical_name}.sig").write_text(signature, encoding="ascii")
        signed.append(SignedFile(f, f.source.stat().st_size, md5, signature))
    (stage / "version.xml").write_text(render_version_xml(files, api), encoding="utf-8")
    xml_doc = build_xml_doc(app_name, version_num, signed, download_url, api)
    app_dir = project_dir / "apps" / app_name / version / platform
    return _PlatformPlan(platform, app_dir, stage, signed, xml_doc)


def _plan_classes(platforms, runtimes, plan_class, glibc_floor) -> dict:
    """platform -> (plan class, glibc floor) (boinc/plan_class.py), as InstallError."""
    from .plan_class import PlanClassError, classes_for

    try:
        return classes_for(platforms, {p: _runtime_manifest(runtimes[p]) for p in platforms},
                           plan_class, glibc_floor)
    except PlanClassError as exc:
        raise InstallError(str(exc)) from None


def _plan_spec_change(project_dir, classes, db):
    from .plan_class import PlanClassError, plan_spec_change

    try:
        return plan_spec_change(str(project_dir), classes, db)
    except PlanClassError as exc:
        raise InstallError(str(exc)) from None


def _check_existing_version(db, plan, app_row, platform_row, app_name, version, version_num):
    if app_row is None or platform_row is None:
        return
    row = db.query_one(
        "SELECT id, xml_doc FROM app_version WHERE appid=%s AND platformid=%s AND version_num=%s "
        "AND plan_class=%s", (app_row["id"], platform_row["id"], version_num, plan.plan_class))
    if row is None:
        return
    existing = row["xml_doc"]
    if isinstance(existing, (bytes, bytearray)):
        existing = existing.decode("utf-8", "replace")
    if existing != plan.xml_doc:
        raise InstallError(
            f"{app_name} {version} for {plan.platform} is already installed (app_version "
            f"{row['id']}) whose xml_doc differs (other files, key or download_url); BOINC app "
            f"versions do not change: install the new files as a new version")
    plan.existing_id = row["id"]


def _check_download_dir(download_dir: Path, plans) -> dict:
    """physical name -> source for files download_dir lacks; raises on a name clash."""
    to_stage = {}
    for plan in plans:
        for f in plan.signed:
            name = f.file.physical_name
            target = download_dir / name
            if target.exists():
                if not target.is_file() or file_md5(target) != f.md5:
                    raise ImmutableFileError(
                        f"{target} exists with other content than {name} of this app version. "
                        f"BOINC files are immutable: a changed file needs a new name "
                        f"(install it as a new version)")
            else:
                to_stage.setdefault(name, f.file.source)
    return to_stage


def _check_templates(project_dir: Path, app_name: str, input_template, result_template) -> dict:
    """templates/NAME_in and NAME_out to write: only those that do not exist yet."""
    from ..templates import (InputFile, OutputFile, TemplateError, check_output_template,
                             render_input_template, render_output_template)

    if input_template is None:
        input_template = render_input_template([InputFile(JOB_INPUT_NAME)])
    if result_template is None:
        result_template = render_output_template([OutputFile(JOB_OUTPUT_NAME)])
    try:
        check_output_template(result_template, f"templates/{app_name}_out")
    except TemplateError as exc:
        raise InstallError(str(exc)) from None
    wanted = {}
    for suffix, text in (("in", input_template), ("out", result_template)):
        path = project_dir / "templates" / f"{app_name}_{suffix}"
        if not path.exists():
            wanted[path] = text
    return wanted


def _apply(project, db, report, app_name, version, version_num, user_friendly_name, app_row,
           platform_rows, plans, new_plans, to_stage, templates):
    download_dir = Path(project.config.download_dir)
    undo = _Undo()
    temporaries: list[Path] = []
    try:
        # 1. everything onto the right file systems under temporary names
        staged = {}
        for name, source in to_stage.items():
            tmp = _temp_name(download_dir, name)
            temporaries.append(tmp)
            shutil.copyfile(source, tmp)
            os.chmod(tmp, 0o644)
            staged[name] = tmp
        app_dirs = {}
        for plan in new_plans:
            if plan.app_dir.exists():
                continue
            _make_dirs(plan.app_dir.parent, undo)
            tmp = _temp_name(plan.app_dir.parent, plan.platform)
            temporaries.append(tmp)
            shutil.copytree(plan.staging_dir, tmp, symlinks=False)
            _open_up(tmp)
            app_dirs[plan.platform] = tmp
        template_tmps = {}
        for path, text in templates.items():
            make_project_dir(path.parent)
            tmp = _temp_name(path.parent, path.name)
            temporaries.append(tmp)
            tmp.write_text(text, encoding="utf-8")
            os.chmod(tmp, FILE_MODE)
            template_tmps[path] = tmp

        # 2. real names, then rows, in one transaction: leaving the block commits, and
        #    any failure before the commit undoes the names (no row without its files,
        #    no files without a row)
        now = int(time.time())
        file_lines = []
        with db.transaction():
            for name, tmp in staged.items():
                final = download_dir / name
                os.link(tmp, final)    # fails if the name appeared meanwhile: never replaced
                undo.created(final)
                file_lines.append((_shown(project, final), "staged"))
            for plan in new_plans:
                rel = plan.app_dir.relative_to(project.path)
                if plan.platform in app_dirs:
                    os.rename(app_dirs.pop(plan.platform), plan.app_dir)
                    undo.created(plan.app_dir)
                    file_lines.append((f"{rel}/", "written (version.xml, files, .sig)"))
                else:
                    file_lines.append((f"{rel}/", "already there (same files)"))
            for path, tmp in template_tmps.items():
                os.link(tmp, path)
                undo.created(path)
                file_lines.append((f"templates/{path.name}", "written"))

            if app_row is None:
                app_id = db.insert("app", _app_row(app_name, user_friendly_name, now))
                report.add(f"app {app_name}", f"created (id {app_id})")
            else:
                app_id = app_row["id"]
                report.add(f"app {app_name}", f"already there (id {app_id})")
            platform_ids = {}
            for platform, row in platform_rows.items():
                if row is None:
                    platform_ids[platform] = db.insert("platform", {
                        "create_time": now, "name": platform,
                        "user_friendly_name": PLATFORMS[platform], "deprecated": 0})
                    report.add(f"platform {platform}", f"created (id {platform_ids[platform]})")
                else:
                    platform_ids[platform] = row["id"]
                    report.add(f"platform {platform}", f"already there (id {row['id']})")
            for plan in plans:
                label = f"app_version {app_name} {version} {plan.platform}" + (
                    f" plan class {plan.plan_class}" if plan.plan_class else "")
                if plan.existing_id is not None:
                    report.app_version_ids[plan.platform] = plan.existing_id
                    report.add(label, f"unchanged (id {plan.existing_id})")
                    continue
                av_id = db.insert("app_version", {
                    "create_time": now, "appid": app_id, "version_num": version_num,
                    "platformid": platform_ids[plan.platform], "xml_doc": plan.xml_doc,
                    "plan_class": plan.plan_class, "beta": 0, "min_core_version": 0,
                    "max_core_version": 0,
                    "deprecated": 0})
                report.app_version_ids[plan.platform] = av_id
                signed = "signed" if plan.signed[0].signature is not None else "UNSIGNED"
                report.add(label, f"created (id {av_id}, version_num {version_num}, "
                                  f"{len(plan.signed)} files, {signed})")
        for what, outcome in file_lines:
            report.add(what, outcome)
    except BaseException:
        undo.run()
        raise
    finally:
        for tmp in temporaries:
            with contextlib.suppress(FileNotFoundError):
                if tmp.is_dir():
                    shutil.rmtree(tmp)
                else:
                    tmp.unlink()

    for suffix in ("in", "out"):
        path = Path(project.path) / "templates" / f"{app_name}_{suffix}"
        if path.exists() and path not in templates:
            report.add(f"templates/{path.name}", "kept (exists)")
    if new_plans:
        (Path(project.path) / "reread_db").touch()
        report.add("reread_db", "touched")
    else:
        report.add("reread_db", "unchanged (nothing new)")


def _shown(project, path: Path) -> str:
    """``path`` relative to the project directory when it is inside it."""
    try:
        return Path(path).relative_to(project.path).as_posix()
    except ValueError:
        return str(path)


def _app_row(name: str, user_friendly_name: Optional[str], now: int) -> dict:
    return {
        "create_time": now, "name": name, "min_version": 0, "deprecated": 0,
        "user_friendly_name": user_friendly_name or name, "homogeneous_redundancy": 0,
        "weight": 1.0, "beta": 0, "target_nresults": 0, "min_avg_pfc": 1.0,
        "host_scale_check": 0, "homogeneous_app_version": 0, "non_cpu_intensive": 0,
        "locality_scheduling": 0, "n_size_classes": 0, "fraction_done_exact": 0,
    }
