"""What the BOINC client gave this task: CPU threads and a GPU.

The client tells an app in init_data.xml how many CPUs its version uses
(``ncpus``, the app version's ``avg_ncpus``: more than 1 for an ``mt`` plan
class) and which GPU it assigned (``gpu_type``, ``gpu_device_num``). BOINC's
client (7.20) sets no environment variables for this, so the worker does it
before it imports the task's code, because numerical libraries read them
when they load: ``OMP_NUM_THREADS`` and the BLAS/numexpr equivalents, and
``CUDA_VISIBLE_DEVICES`` for an NVIDIA GPU (so CUDA libraries see only the
assigned device, as their device 0).

Tasks ask with :func:`task_resources`::

    from boinc_pymw import task_resources
    r = task_resources()        # TaskResources(threads=4, gpu_type=None, gpu_device=None)

Outside BOINC (multicore, MPI, HTCondor, tests) a task gets 1 thread (or
``OMP_NUM_THREADS`` if set) and no GPU. Standard library only: this module
ships in the volunteer runtime.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

#: Variables numerical libraries read for their thread count.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "BLIS_NUM_THREADS", "NUMEXPR_NUM_THREADS", "NUMEXPR_MAX_THREADS",
                    "VECLIB_MAXIMUM_THREADS")


@dataclass(frozen=True)
class TaskResources:
    """The CPU threads and GPU a task may use."""

    threads: int = 1
    gpu_type: Optional[str] = None      # "NVIDIA", "ATI", "intel_gpu", or None
    gpu_device: Optional[int] = None    # the client's device number


_current: Optional[TaskResources] = None


def from_init_data(init_data: dict) -> TaskResources:
    """The resources init_data.xml (``boinc.init_data()``) describes."""
    try:
        ncpus = float(init_data.get("ncpus") or 1.0)
    except (TypeError, ValueError):
        ncpus = 1.0
    threads = max(1, int(ncpus + 0.5))
    gpu_type = str(init_data.get("gpu_type") or "").strip() or None
    try:
        device = int(init_data.get("gpu_device_num", -1))
    except (TypeError, ValueError):
        device = -1
    if gpu_type is None or device < 0:
        gpu_type, device = None, None
    return TaskResources(threads=threads, gpu_type=gpu_type, gpu_device=device)


def apply(resources: TaskResources) -> None:
    """Record ``resources`` for :func:`task_resources` and export them to the
    variables libraries read (replacing what the volunteer's environment had)."""
    global _current
    _current = resources
    for name in THREAD_VARIABLES:
        os.environ[name] = str(resources.threads)
    if resources.gpu_type == "NVIDIA" and resources.gpu_device is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(resources.gpu_device)


def apply_from_init_data(init_data: dict) -> None:
    """:func:`apply` what a BOINC client gave (nothing outside BOINC: an HTCondor
    slot's own OMP_NUM_THREADS, for one, is left as it is)."""
    try:
        given = float((init_data or {}).get("ncpus") or 0)
    except (TypeError, ValueError):
        given = 0.0
    if given > 0:          # a client wrote init_data.xml (standalone: none, or 0)
        apply(from_init_data(init_data))


def task_resources() -> TaskResources:
    """What this task was given (see the module docstring)."""
    if _current is not None:
        return _current
    try:
        threads = max(1, int(os.environ.get("OMP_NUM_THREADS", "1")))
    except ValueError:
        threads = 1
    return TaskResources(threads=threads)
