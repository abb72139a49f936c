"""boinc-pymw: one master-worker API from a laptop to BOINC volunteers.

    from boinc_pymw import Master
    with Master(interface="multicore", workers=4) as master:
        print(list(master.map(pow, range(10), range(10))))

Heavy parts (database, MPI, HTCondor) are imported only when used.
"""

__version__ = "0.1.0"

__all__ = ["Master", "add_arguments", "TaskError", "WorkerLost", "TaskTimeout",
           "as_completed", "checkpoint", "restore", "task_resources", "__version__"]

_LAZY = {
    "Master": ("boinc_pymw.master", "Master"),
    "add_arguments": ("boinc_pymw.master", "add_arguments"),
    "TaskError": ("boinc_pymw.errors", "TaskError"),
    "WorkerLost": ("boinc_pymw.errors", "WorkerLost"),
    "TaskTimeout": ("boinc_pymw.errors", "TaskTimeout"),
    "as_completed": ("boinc_pymw.progress", "as_completed"),
    "checkpoint": ("boinc_pymw.checkpoint", "checkpoint"),
    "restore": ("boinc_pymw.checkpoint", "restore"),
    "task_resources": ("boinc_pymw.worker.resources", "task_resources"),
}


def __getattr__(name):
    try:
        module_name, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'boinc_pymw' has no attribute {name!r}") from None
    import importlib

    module = importlib.import_module(module_name)
    if name in globals():  # a submodule of that name (boinc_pymw.checkpoint, a callable module)
        return globals()[name]
    value = getattr(module, attr)
    globals()[name] = value
    return value
