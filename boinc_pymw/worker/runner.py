"""``python -m boinc_pymw.worker``: run the one task described by input.json."""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import sys
from pathlib import Path

from .._atomic import write_atomic
from ..checkpoint import BoincPolicy, task_context
from ..errors import BoincPymwError
from .boinc_runtime import is_real, load_boinc, resolve_path
from .codec import JobFormatError, resolve_reference
from .error_record import error_record

DEFAULT_CODE_NAME = "app_code.zip"
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
    parser.add_argument("--checkpoint-dir", default=".",
                        help="where this task's checkpoint lives (default: the slot / cwd)")
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


def add_code_paths(boinc_module, names: list[str]) -> None:
    """Put the app version's own code on sys.path (explicit names must exist)."""
    explicit = bool(names)
    for name in names or [DEFAULT_CODE_NAME]:
        path = resolve_path(boinc_module, name)
        if not path.exists():
            if explicit:
                raise WorkerFailure(f"code path {name} ({path}) does not exist")
            continue
        sys.path.insert(0, str(path.resolve()))


def import_function(reference: str):
    try:
        fn = resolve_reference(reference)
    except JobFormatError as exc:
        raise WorkerFailure(str(exc)) from None
    except (ImportError, AttributeError) as exc:
        raise WorkerFailure(f"cannot import task function {reference}: "
                            f"{type(exc).__name__}: {exc}") from None
    if not callable(fn):
        raise WorkerFailure(f"task function {reference} is not callable")
    return fn


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
    try:
        job = read_job(resolve_path(boinc, args.input))
        add_code_paths(boinc, args.code)
        fn = import_function(job["function"])
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
