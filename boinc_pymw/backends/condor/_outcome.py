"""What a finished or held HTCondor job means for its future.

The inputs are the job's ClassAd (from the queue while it is there, from the
schedd's history once it left) and its task directory, where HTCondor's file
transfer put output.json, stdout.txt and stderr.txt back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from ...errors import TaskError
from ._submit import OUTPUT

IDLE, RUNNING, REMOVED, COMPLETED, HELD, TRANSFERRING_OUTPUT, SUSPENDED = range(1, 8)


class CondorJobFailed(TaskError):
    """An HTCondor job ended without an answer (held, removed, crashed)."""

    def __init__(self, message: str, job_id: str = "", hold_reason: Optional[str] = None):
        super().__init__(message)
        self.job_id = job_id
        self.hold_reason = hold_reason


def job_id(ad) -> str:
    return f"{ad.get('ClusterId', '?')}.{ad.get('ProcId', '?')}"


def stderr_tail(task_dir: Path, limit: int = 2000) -> str:
    path = task_dir / "stderr.txt"
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    text = text.strip()
    return text[-limit:]


def held_error(ad, task_dir: Path) -> CondorJobFailed:
    reason = str(ad.get("HoldReason", "no HoldReason given"))
    code = ad.get("HoldReasonCode")
    message = f"HTCondor job {job_id(ad)} was held: {reason}"
    if code is not None:
        message += f" (HoldReasonCode {code})"
    tail = stderr_tail(task_dir)
    if tail:
        message += f"\nits stderr ends with:\n{tail}"
    return CondorJobFailed(message, job_id(ad), reason)


def finished_outcome(ad, task_dir: Path) -> Any:
    """The value of a job that left the queue, or raise its error.

    ``ad`` may be None when the schedd keeps no history; output.json decides
    then."""
    from ...worker.codec import decode_output

    where = job_id(ad) if ad is not None else f"in {task_dir}"
    status = ad.get("JobStatus") if ad is not None else None
    if status == REMOVED:
        reason = ad.get("RemoveReason", "no RemoveReason given")
        raise CondorJobFailed(f"HTCondor job {where} was removed: {reason}", where)
    if ad is not None and ad.get("ExitBySignal") is True:
        raise CondorJobFailed(f"HTCondor job {where} was killed by signal "
                              f"{ad.get('ExitSignal', '?')}{_tail_note(task_dir)}", where)
    output = task_dir / OUTPUT
    try:
        document = json.loads(output.read_text())
    except FileNotFoundError:
        code = ad.get("ExitCode", "?") if ad is not None else "?"
        raise CondorJobFailed(f"HTCondor job {where} exited with code {code} and sent back no "
                              f"{OUTPUT}{_tail_note(task_dir)}", where) from None
    except (OSError, ValueError) as exc:
        raise CondorJobFailed(f"HTCondor job {where} sent back an unreadable {OUTPUT}: {exc}",
                              where) from None
    return decode_output(document)


def chunk_value(value: Any) -> list:
    """The results of a ``Master.map`` chunk job (``_chunk.run_chunk``), or raise
    ``ChunkFailed`` with the results of the calls before the one that raised."""
    if isinstance(value, list):
        return value
    from ...worker.codec import decode_output
    from ..base import ChunkFailed

    results = value.get("results") if isinstance(value, dict) else None
    error = value.get("error") if isinstance(value, dict) else None
    if not isinstance(results, list) or not isinstance(error, dict):
        raise CondorJobFailed(f"a map chunk job answered {value!r:.200}, neither its results "
                              f"nor a failed call")
    try:
        decode_output({"ok": False, "error": error})
    except Exception as exc:    # the failed call's error, rebuilt as for any task
        raise ChunkFailed(results, exc, str(error.get("traceback", ""))) from None
    raise CondorJobFailed("a map chunk job's error record did not decode to an error")


def _tail_note(task_dir: Path) -> str:
    tail = stderr_tail(task_dir)
    return f"; its stderr ends with:\n{tail}" if tail else ""
