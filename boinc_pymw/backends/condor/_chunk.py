"""Run one chunk of ``Master.map`` as one HTCondor job.

Master.map hands back ends ``run_chunk(fn, [args, ...])``; a job document
holds JSON only, so the function travels as its "module:qualname" reference
and is imported on the execute machine, like any task function.
"""

from __future__ import annotations

REFERENCE = "boinc_pymw.backends.condor._chunk:run_chunk"


def run_chunk(function: str, chunk: list) -> list:
    from ...worker.codec import resolve_reference

    fn = resolve_reference(function)
    return [fn(*args) for args in chunk]
