"""One HTCondor cluster per batch of work items: its directory and submit file.

    batch_dir/
      job.sub            the submit description (condor_submit job.sub works too)
      tasks.txt          one "task_dir, item_id" line per job (the queue items)
      jobs.log           HTCondor's job event log
      task_0/input.json  the worker's job document (boinc_pymw.worker format)
      task_0/output.json written back by HTCondor's file transfer on exit
      task_0/stdout.txt, stderr.txt

Each job runs ``python -m boinc_pymw.worker --input input.json --output
output.json`` in its execute-side scratch directory; HTCondor's file transfer
moves input.json (plus any ``code`` paths) there and output.json back. Nothing
about the operating system is required unless the caller asks for it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

#: The requirement used when none is asked for. condor_submit adds the submit
#: machine's Arch and OpSys to a job's Requirements unless the expression
#: mentions them; this one mentions both and restricts nothing.
ANY_MACHINE = "(TARGET.Arch =!= UNDEFINED) && (TARGET.OpSys =!= UNDEFINED)"

INPUT, OUTPUT = "input.json", "output.json"


@dataclass
class JobSettings:
    """What every job of a cluster shares (from the back end's options)."""

    python: str = "python3"           # bare name (found through /usr/bin/env) or absolute path
    code: Sequence[str] = ()          # files/dirs transferred and put on the worker's sys.path
    data: Sequence[str] = ()          # PyMW data_files: transferred into the job's directory
    requirements: Optional[str] = None
    extra: dict = field(default_factory=dict)  # more submit commands, e.g. request_memory


def cluster_settings(base: JobSettings, run: str, timeout: float = 0) -> JobSettings:
    """The settings of one cluster: ``base`` plus the run's tag (the back end
    finds its jobs by it) and, with a task timeout, HTCondor's own limit (a job
    that runs longer is held, and its hold reason says why)."""
    extra = {**base.extra, "+BoincPymwRun": f'"{run}"'}
    if timeout:
        extra["allowed_execute_duration"] = str(int(math.ceil(timeout)))
    return dataclasses.replace(base, extra=extra)


def quote_argument(arg: str) -> str:
    """One argument in HTCondor's "new" arguments syntax (inside double quotes)."""
    if arg and not any(c in arg for c in " \t'\""):
        return arg
    return "'" + arg.replace('"', '""').replace("'", "''") + "'"


def job_command(settings: JobSettings) -> tuple[str, list[str]]:
    """(executable, arguments) of every job."""
    # --trusted-job: the user's own jobs on the user's own pool, so any importable
    # function (the entry point check is for BOINC volunteers; worker/entry_points.py)
    worker_args = ["-m", "boinc_pymw.worker", "--trusted-job", "--input", INPUT, "--output", OUTPUT]
    for path in settings.code:
        worker_args += ["--code", os.path.basename(os.path.normpath(path))]
    if os.path.isabs(settings.python) or "\\" in settings.python:
        return settings.python, worker_args
    return "/usr/bin/env", [settings.python, *worker_args]


def submit_description(batch_dir: Path, settings: JobSettings) -> str:
    """The submit file text for the batch in ``batch_dir`` (tasks.txt lists its jobs)."""
    executable, arguments = job_command(settings)
    inputs = [INPUT] + [os.path.abspath(p) for p in [*settings.data, *settings.code]]
    lines = [
        "# written by boinc_pymw (HTCondor back end); one job per work item",
        "universe = vanilla",
        f"executable = {executable}",
        "transfer_executable = false",
        'arguments = "' + " ".join(quote_argument(a) for a in arguments) + '"',
        "initialdir = $(task_dir)",
        "should_transfer_files = YES",
        "when_to_transfer_output = ON_EXIT",
        f"transfer_input_files = {', '.join(inputs)}",
        f"transfer_output_files = {OUTPUT}",
        "output = stdout.txt",
        "error = stderr.txt",
        f"log = {batch_dir / 'jobs.log'}",
        "+BoincPymwItem = $(item_id)",
        f"requirements = {settings.requirements or ANY_MACHINE}",
    ]
    ours = {line.split("=", 1)[0].strip().lower() for line in lines[1:]} | {"queue"}
    for key, value in settings.extra.items():
        if key.strip().lower() in ours:
            raise ValueError(f"submit command {key!r} is set by boinc_pymw and cannot be "
                             f"overridden (Requirements: use --condor-requirements)")
        if "\n" in f"{key}{value}":
            raise ValueError(f"submit command {key!r} may not contain a line break")
        lines.append(f"{key} = {value}")
    lines.append(f"queue task_dir, item_id from {batch_dir / 'tasks.txt'}")
    return "\n".join(lines) + "\n"


def write_batch(batch_dir: Path, jobs: Sequence[tuple[int, dict]], settings: JobSettings) -> list[dict]:
    """Lay out ``batch_dir`` for ``jobs`` ((item_id, worker job document) pairs)
    and return the queue items (what HTCondor's itemdata will hold)."""
    batch_dir.mkdir(parents=True, exist_ok=False)
    items = []
    for index, (item_id, document) in enumerate(jobs):
        task_dir = batch_dir / f"task_{index}"
        task_dir.mkdir()
        (task_dir / INPUT).write_text(json.dumps(document))
        items.append({"task_dir": str(task_dir), "item_id": str(item_id)})
    (batch_dir / "tasks.txt").write_text(
        "".join(f"{it['task_dir']}, {it['item_id']}\n" for it in items))
    (batch_dir / "job.sub").write_text(submit_description(batch_dir, settings))
    return items
