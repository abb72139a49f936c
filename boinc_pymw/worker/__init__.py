"""Run one task from a JSON job file: the worker side of every remote back end.

Data flow (one process, one task; never any pickle)::

    master: encode_task(fn, args, kwargs) -> {"function": "pkg.mod:qualname",
                                              "args": [...], "kwargs": {...}}
              |  input.json (a BOINC workunit file, a condor input, a plain file)
              v
    python -m boinc_pymw.worker [--input P] [--output P] [--code P]...
        boinc.init(); resolve logical names; import the function from code
        already on the machine; run it inside checkpoint.task_context(cwd)
              |  output.json, written atomically:
              |    {"ok": true, "value": ...} or
              |    {"ok": false, "error": {"type", "message", "traceback"}}
              v
    master: decode_output(document) -> value, or raises the task's error
            (builtin exception types by name, otherwise TaskError)

A task's own exception is an answer (exit status 0, so replicas agree): its
record is made the same on every host (file names relative to their sys.path
entry, no absolute directories, no memory addresses; see error_record), so the
validators find a quorum. A hard crash prints the Python traceback to stderr
(faulthandler), which BOINC returns as stderr_out. A broken job (bad input, function not importable, result not JSON) is a
runtime failure: message on stderr, non-zero exit status.
"""

from .codec import decode_output, encode_task, function_reference

__all__ = ["encode_task", "decode_output", "function_reference"]
