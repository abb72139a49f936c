"""``python -m boinc_pymw.worker``: run the one task described by input.json."""

from __future__ import annotations

import argparse
import faulthandler
import html
import json
import os
import re
import sys
from pathlib import Path
from typing import Optional

from .._atomic import write_atomic
from ..checkpoint import BoincPolicy, task_context
from ..errors import BoincPymwError
from .boinc_runtime import is_real, load_boinc, resolve_path
from .codec import JobFormatError, resolve_reference
from .entry_points import EntryPointRefused, EntryPoints, import_entry_point
from . import resources
from .error_record import error_record
from .packages import carried_modules, check_packages_dir

DEFAULT_CODE_NAME = "app_code.zip"
INIT_DATA_FILE = "init_data.xml"
_APP_FILE = re.compile(r"<app_file>([^<]*)</app_file>")
RUNTIME_FAILURE = 1


class WorkerFailure(Exception):
    """The job itself is broken (not the task): reported on stderr, non-zero exit."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m boinc_pymw.worker",
                                     description="Run one boinc_pymw task from a JSON job file.")
    parser.add_argument("--input", default="input.json",
                        help="job file (a BOINC logical name or a path; default input.json)")
    parser.add_argument("--output", default="output.json",
                        help="result file (a BOINC logical name or a path; default output.json)")
    parser.add_argument("--code", action="append", default=[],
                        help="zip or directory of the app's own code to put on sys.path "
                             f"(repeatable; default {DEFAULT_CODE_NAME} when present)")
    parser.add_argument("--packages", metavar="DIR",
                        help="the unpacked third-party packages the app version carries "
                             "(the launcher passes it; found after the app's code)")
    parser.add_argument("--checkpoint-dir", default=".",
                        help="where this task's checkpoint lives (default: the slot / cwd)")
    parser.add_argument("--trusted-job", action="store_true",
                        help="the job comes from the user's own submission (HTCondor): call any "
                             "importable function; refused under a BOINC client")
    return parser


def read_job(path: Path) -> dict:
    try:
        job = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise WorkerFailure(f"input file {path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise WorkerFailure(f"input file {path} is not valid JSON: {exc}") from None
    if not isinstance(job, dict) or not isinstance(job.get("function"), str):
        raise WorkerFailure(f"input file {path} has no \"function\": \"module:qualname\" entry")
    args, kwargs = job.get("args", []), job.get("kwargs", {})
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise WorkerFailure(f"input file {path}: \"args\" must be a list and \"kwargs\" an object")
    return {"function": job["function"], "args": args, "kwargs": kwargs}


def app_version_files(boinc_module) -> Optional[set]:
    """Physical names of the app version's files when a BOINC client runs this task
    (init_data.xml's <app_file> lines, written by clients since 7.10), else None.

    A client always writes init_data.xml into the slot; its presence alone counts,
    since the API also runs "standalone" when it cannot attach to the client. The
    file is read here: libboinc_api 7.20 writes <app_file> but does not parse it."""
    if boinc_module.is_standalone() and not os.path.exists(INIT_DATA_FILE):
        return None
    try:
        with open(INIT_DATA_FILE, "rb") as fh:
            text = fh.read(16 << 20).decode("utf-8", "replace")
    except OSError:
        return set()
    return {html.unescape(name.strip()) for name in _APP_FILE.findall(text)}


def code_paths(boinc_module, names: list[str], app_files: Optional[set]) -> list[Path]:
    """The app version's own code (explicit names must exist).

    Under a client every one must be a file of the app version, which the
    client checked against its signature: a workunit can add files to the
    slot and words to the command line, but it cannot bring code."""
    explicit = bool(names)
    roots = []
    for name in names or [DEFAULT_CODE_NAME]:
        path = resolve_path(boinc_module, name)
        if not path.exists():
            if explicit:
                raise WorkerFailure(f"code path {name} ({path}) does not exist")
            continue
        if app_files is not None and path.name not in app_files:
            listed = "" if app_files else " (the client listed none: it is older than 7.10)"
            raise WorkerFailure(f"code path {name} is not a file of the app version (it is "
                                f"{path.name}){listed}; a workunit cannot bring code")
        roots.append(path.resolve())
    return roots


def add_to_sys_path(roots: list[Path], packages: Optional[Path]) -> None:
    """App code first; carried packages after the runtime's standard library and
    before any host site-packages (an ordinary Python has some; the runtime none)."""
    for root in reversed(roots):
        sys.path.insert(0, str(root))
    if packages is not None:
        hosts = [i for i, p in enumerate(sys.path) if os.path.basename(p) in
                 ("site-packages", "dist-packages")]
        sys.path.insert(hosts[0] if hosts else len(sys.path), str(packages))


def _task_function(reference: str, load) -> object:
    """``load()``'s function, with every way it can fail as a WorkerFailure."""
    try:
        fn = load()
    except (JobFormatError, EntryPointRefused) as exc:
        raise WorkerFailure(str(exc)) from None
    except (ImportError, AttributeError) as exc:
        raise WorkerFailure(f"cannot import task function {reference}: "
                            f"{type(exc).__name__}: {exc}") from None
    if not callable(fn):
        raise WorkerFailure(f"task function {reference} is not callable")
    return fn


def import_function(reference: str):
    """Any importable function: only for --trusted-job (the user's own pool)."""
    return _task_function(reference, lambda: resolve_reference(reference))


def import_app_function(reference: str, roots: list[Path], packages: Optional[Path]):
    """The function ``reference`` names, if it is an entry point of the app's own code
    (entry_points.py); checked before anything of it is imported."""
    def load():
        allowed = EntryPoints.of_code(roots)
        carried = carried_modules(packages) if packages is not None else {}
        return import_entry_point(reference, allowed, roots, carried)

    return _task_function(reference, load)


def run_task(fn, job: dict) -> dict:
    """Call the task; its exception is part of the answer, recorded the same way on
    every host (no absolute paths, no addresses, this frame left out) so that
    replicas of a workunit agree (see error_record)."""
    try:
        value = fn(*job["args"], **job["kwargs"])
    except Exception as exc:
        return {"ok": False, "error": error_record(exc, skip_frames=1)}
    return {"ok": True, "value": value}


def encode_output(document: dict) -> bytes:
    try:
        return json.dumps(document).encode()
    except (TypeError, ValueError) as exc:
        raise WorkerFailure(f"the task's result is not JSON data: {exc}") from None


def forget_working_directory() -> None:
    """Drop the slot (cwd) from sys.path: `python -m` puts it first, and the
    workunit's files live there. Task code comes from --code or installed packages."""
    cwd = os.getcwd()
    sys.path[:] = [p for p in sys.path if p not in ("", ".") and os.path.abspath(p) != cwd]


def enable_faulthandler() -> None:
    """A hard crash (SIGSEGV, SIGFPE, SIGABRT, SIGBUS, SIGILL; on Windows an access
    violation) prints the Python traceback of every thread to stderr, which BOINC
    returns as the result's stderr_out. Enabled after boinc.init(): under a client,
    init() points stderr at the slot's stderr.txt, and it puts back the signal
    handlers that were there before it."""
    try:
        faulthandler.enable(file=sys.stderr, all_threads=True)
    except (AttributeError, ValueError, OSError):  # no usable stderr (pythonw, closed fd)
        pass


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    forget_working_directory()
    boinc = load_boinc()
    boinc.init()
    enable_faulthandler()
    resources.apply_from_init_data(boinc.init_data())   # threads, GPU: before the task's imports
    try:
        job = read_job(resolve_path(boinc, args.input))
        app_files = app_version_files(boinc)
        roots = code_paths(boinc, args.code, app_files)
        packages = None
        if args.packages:
            packages = check_packages_dir(Path(args.packages), app_files, boinc)
        add_to_sys_path(roots, packages)
        if args.trusted_job:
            if app_files is not None:
                raise WorkerFailure("--trusted-job is refused under a BOINC client: a "
                                    "workunit's command line cannot lift the entry point check")
            fn = import_function(job["function"])
        else:
            fn = import_app_function(job["function"], roots, packages)
        output_path = resolve_path(boinc, args.output)
        policy = BoincPolicy(boinc) if is_real(boinc) else None
        boinc.fraction_done(0.0)
        with task_context(Path(args.checkpoint_dir), policy=policy):
            document = run_task(fn, job)
        write_atomic(output_path, encode_output(document))
    except (WorkerFailure, BoincPymwError, OSError) as exc:
        print(f"boinc_pymw.worker: error: {exc}", file=sys.stderr)
        boinc.finish(RUNTIME_FAILURE)
        return RUNTIME_FAILURE
    boinc.fraction_done(1.0)
    boinc.finish(0)
    return 0
