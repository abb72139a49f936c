"""Run one chunk of ``Master.map`` as one HTCondor job.

Master.map hands back ends ``run_chunk(fn, [args, ...])``; a job document
holds JSON only, so the function travels as its "module:qualname" reference
and is imported on the execute machine, like any task function.

A call that raises ends the chunk but keeps the results before it: the job
answers ``{"failed_at": n, "results": [...], "error": <error record>}``
instead of the list, and the master turns that into ``ChunkFailed``
(``_outcome.chunk_value``), so ``map`` still yields those results, then raises.
"""

from __future__ import annotations

REFERENCE = "boinc_pymw.backends.condor._chunk:run_chunk"


def run_chunk(function: str, chunk: list):
    from ...worker.codec import resolve_reference

    fn = resolve_reference(function)
    results = []
    try:
        for args in chunk:
            results.append(fn(*args))
    except KeyboardInterrupt:
        raise
    except BaseException as exc:   # as base.run_chunk: SystemExit of one call ends the chunk
        from ...worker.error_record import error_record

        return {"failed_at": len(results), "results": results,
                "error": error_record(exc, skip_frames=1)}
    return results
