"""The job and result documents of the worker, as JSON-ready dicts."""

from __future__ import annotations

import builtins
import importlib
import json
import sys

from ..errors import BoincPymwError, RemoteTraceback, TaskError


class JobFormatError(BoincPymwError, ValueError):
    """A job or output document does not follow the worker's format."""


def function_reference(fn) -> str:
    """ "module:qualname" for a module-level function, checked to import back to `fn`."""
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    if not callable(fn) or not module or not qualname:
        raise TypeError(f"{fn!r} is not a function that can be named by module and qualname")
    if "<lambda>" in qualname or "<locals>" in qualname:
        raise TypeError(f"{module}.{qualname} is a lambda or a closure; remote workers can only "
                        "run functions defined at the top level of an importable module")
    from_main = module == "__main__"
    if from_main:
        spec = getattr(sys.modules.get("__main__"), "__spec__", None)
        if spec is None or not spec.name or spec.name == "__main__":
            raise TypeError(f"{qualname} is defined in the script being run (__main__); move it "
                            "into a module the workers can import")
        module = spec.name  # the script was run as `python -m module`
    reference = f"{module}:{qualname}"
    try:
        found = resolve_reference(reference)
    except (ImportError, AttributeError) as exc:
        raise TypeError(f"{reference} cannot be imported back: {exc}") from None
    if found is not fn and getattr(found, "__wrapped__", None) is not fn \
            and not (from_main and _same_definition(found, fn)):
        raise TypeError(f"{reference} imports a different object than the one given")
    return reference


def _same_definition(a, b) -> bool:
    """Under `python -m pkg.mod`, importing pkg.mod runs the file a second time, so
    its functions are new objects: the same function when the (unwrapped) code
    objects are equal and come from the same file."""
    import inspect  # only here: the worker never needs it

    if getattr(a, "__qualname__", None) != getattr(b, "__qualname__", None):
        return False
    try:
        code_a = getattr(inspect.unwrap(a), "__code__", None)
        code_b = getattr(inspect.unwrap(b), "__code__", None)
    except ValueError:  # a __wrapped__ cycle
        return False
    return (code_a is not None and code_b is not None and code_a == code_b
            and code_a.co_filename == code_b.co_filename)


def resolve_reference(reference: str):
    """Import "module:qualname" (raises ImportError / AttributeError / JobFormatError)."""
    module_name, sep, qualname = reference.partition(":")
    if not sep or not module_name or not qualname:
        raise JobFormatError(f"function reference must look like 'package.module:name', "
                             f"not {reference!r}")
    target = importlib.import_module(module_name)
    for part in qualname.split("."):
        target = getattr(target, part)
    return target


def encode_task(fn_or_ref, args=(), kwargs=None) -> dict:
    """The job document for calling `fn_or_ref(*args, **kwargs)` on a worker."""
    if isinstance(fn_or_ref, str):
        module_name, sep, qualname = fn_or_ref.partition(":")
        if not sep or not module_name or not qualname:
            raise JobFormatError(f"function reference must look like 'package.module:name', "
                                 f"not {fn_or_ref!r}")
        reference = fn_or_ref
    else:
        reference = function_reference(fn_or_ref)
    job = {"function": reference, "args": list(args), "kwargs": dict(kwargs or {})}
    try:
        json.dumps(job)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"arguments of {reference} must be JSON data: {exc}") from None
    return job


def decode_output(document):
    """The task's value, or raise its error (builtin exceptions by name, else TaskError)."""
    if not isinstance(document, dict) or not isinstance(document.get("ok"), bool):
        raise JobFormatError(f"not a worker output document: {document!r:.200}")
    if document["ok"]:
        if "value" not in document:
            raise JobFormatError("worker output has ok=true but no value")
        return document["value"]
    error = document.get("error")
    if not isinstance(error, dict):
        raise JobFormatError("worker output has ok=false but no error object")
    type_name = str(error.get("type", "Exception"))
    message = str(error.get("message", ""))
    remote_tb = str(error.get("traceback", ""))
    exc_type = getattr(builtins, type_name, None)
    if isinstance(exc_type, type) and issubclass(exc_type, Exception):
        try:
            exc = exc_type(message)
        except Exception:  # an exception class with a different signature
            exc = None
        if exc is not None:
            raise exc from RemoteTraceback(remote_tb)
    task_error = TaskError(f"{type_name}: {message}")
    task_error.type = type_name
    task_error.message = message
    task_error.remote_traceback = remote_tb
    raise task_error from RemoteTraceback(remote_tb)
