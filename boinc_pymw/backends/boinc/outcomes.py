"""What came back for a workunit, as a future's result or exception.

Shared by the server back end and ``boinc-local``: a results-store record
becomes the task's value (decoded as untrusted JSON) or an exception; a
failed workunit becomes :class:`WorkunitFailed` with BOINC's error bits in
words and an excerpt of a failed result's stderr.
"""

from __future__ import annotations

import re
from typing import Any, Optional

from ...errors import BoincPymwError, TaskError
from ...worker import decode_output
from .results_store import record_failure, record_output

#: how much of a failed result's stderr goes into the error message
STDERR_EXCERPT_CHARS = 2000


class WorkunitFailed(TaskError):
    """A workunit ended without a usable canonical result.

    ``error_mask`` (BOINC's bits), ``reason`` (them in words), ``wu_name`` and
    ``stderr`` (an excerpt of a failed result's stderr_out) say why.
    """

    def __init__(self, wu_name: str, error_mask: int, reason: str, detail: str = "",
                 stderr: str = ""):
        self.wu_name = wu_name
        self.error_mask = error_mask
        self.reason = reason
        self.stderr = stderr
        text = f"workunit {wu_name} failed: {reason}"
        if detail:
            text += f"; {detail}"
        if stderr:
            text += f"\n--- stderr of a failed result ---\n{stderr}"
        super().__init__(text)


def stderr_excerpt(text: Any, limit: int = STDERR_EXCERPT_CHARS) -> str:
    """The client's message and the tail of stderr.txt from ``result.stderr_out``."""
    if text is None:
        return ""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = str(text)
    parts = []
    message = re.search(r"<message>(.*?)</message>", text, re.S)
    if message and message.group(1).strip():
        parts.append(message.group(1).strip())
    stderr = re.search(r"<stderr_txt>(.*?)(</stderr_txt>|$)", text, re.S)
    body = (stderr.group(1) if stderr else ("" if message else text)).strip()
    if len(body) > limit:
        body = "...\n" + body[-limit:]
    if body:
        parts.append(body)
    return "\n".join(parts)


def failure_detail(db, wu: dict) -> tuple[str, str]:
    """(what the results say, stderr excerpt of the most telling failed result)."""
    from ...boinc.states import Outcome

    rows = db.query(
        "SELECT name, server_state, outcome, client_state, exit_status, validate_state, "
        "stderr_out FROM result WHERE workunitid=%s ORDER BY id", (wu["id"],))
    if not rows:
        return "no result was ever created", ""
    parts = []
    excerpt = ""
    for r in rows:
        try:
            outcome = Outcome(int(r["outcome"])).name
        except ValueError:
            outcome = str(r["outcome"])
        part = f"{r['name']}: {outcome}"
        if r["outcome"] == Outcome.CLIENT_ERROR:
            part += f" (exit status {r['exit_status']})"
        parts.append(part)
        text = stderr_excerpt(r.get("stderr_out"))
        if text and (not excerpt or r["outcome"] in (Outcome.CLIENT_ERROR,
                                                     Outcome.VALIDATE_ERROR)):
            excerpt = text
    return "results: " + ", ".join(parts), excerpt


def outcome_from_record(record: dict, db=None, wu: Optional[dict] = None) -> tuple[bool, Any]:
    """(ok, value-or-exception) for one store record: never raises."""
    failure = record_failure(record)
    if failure is not None:
        mask, reason = failure
        detail, excerpt = ("", "")
        if db is not None and wu is not None:
            try:
                detail, excerpt = failure_detail(db, wu)
            except BoincPymwError as exc:
                detail = f"(result details unavailable: {exc})"
        return False, WorkunitFailed(record.get("wu_name") or (wu or {}).get("name", "?"),
                                     mask, reason, detail, excerpt)
    try:
        return True, decode_output(record_output(record))
    except Exception as exc:  # the task's own error, or a malformed output
        return False, exc
