"""What came back for a workunit, as a future's result or exception.

Shared by the server back end and ``boinc-local``: a results-store record
becomes the task's value (decoded as untrusted JSON) or an exception; a
failed workunit becomes :class:`WorkunitFailed` with BOINC's error bits in
words and an excerpt of a failed result's stderr.
"""

from __future__ import annotations

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


def _between(text: str, start: str, end: str, *, open_ended: bool) -> Optional[str]:
    """Text after the first ``start`` up to the next ``end`` (or the text's end when
    ``open_ended``); None when ``start`` is absent (or ``end`` is and may not be).

    Two ``str.find`` calls: linear in the text, whatever tags a volunteer's
    stderr holds (a regex scan restarted at every unclosed tag was quadratic).
    """
    i = text.find(start)
    if i < 0:
        return None
    i += len(start)
    j = text.find(end, i)
    if j < 0:
        return text[i:] if open_ended else None
    return text[i:j]


def stderr_excerpt(text: Any, limit: int = STDERR_EXCERPT_CHARS) -> str:
    """The client's message and the tail of stderr.txt from ``result.stderr_out``."""
    if text is None:
        return ""
    if isinstance(text, (bytes, bytearray, memoryview)):
        text = bytes(text).decode("utf-8", "replace")
    elif not isinstance(text, str):
        text = str(text)
    parts = []
    message = _between(text, "<message>", "</message>", open_ended=False)
    if message is not None and message.strip():
        parts.append(message.strip())
    stderr = _between(text, "<stderr_txt>", "</stderr_txt>", open_ended=True)
    body = (stderr if stderr is not None else ("" if message is not None else text)).strip()
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
