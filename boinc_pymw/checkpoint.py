"""Checkpoint and restore for long tasks: ``checkpoint(state)`` / ``restore()``.

    from boinc_pymw import checkpoint, restore

    def long_sum(n):
        i, total = restore(default=(0, 0))
        while i < n:
            total += work(i); i += 1
            checkpoint((i, total))      # saved only when it is time
        return total

State is JSON data, saved atomically (temp file + rename) to
``pymw_checkpoint.json`` in the current task's directory, so a job killed at
any moment restarts from its last complete checkpoint. *When* to save is a
policy: under the BOINC runtime the client decides (``time_to_checkpoint`` /
``checkpoint_completed``, honouring the volunteer's "checkpoint at most every
N seconds"); elsewhere at most once per ``BOINC_PYMW_CHECKPOINT_INTERVAL``
seconds (default 60). Back ends say where a task's checkpoint lives with
``task_context(directory)``; outside any context it is the current directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
import types
from pathlib import Path

from ._atomic import write_atomic
from .errors import BoincPymwError

CHECKPOINT_FILE = "pymw_checkpoint.json"
DEFAULT_INTERVAL = 60.0


class CheckpointError(BoincPymwError):
    """A checkpoint could not be written or read back."""


class IntervalPolicy:
    """Save at most once per `seconds` (wall clock); used outside BOINC."""

    def __init__(self, seconds: float):
        self.seconds = float(seconds)
        self._last = time.monotonic()

    def due(self) -> bool:
        return time.monotonic() - self._last >= self.seconds

    def saved(self) -> None:
        self._last = time.monotonic()

    def fraction_done(self, fraction: float) -> None:
        pass


class BoincPolicy:
    """Let the BOINC client decide (its ``time_to_checkpoint`` enters a critical
    section that ``checkpoint_completed`` ends)."""

    def __init__(self, boinc_module):
        self.boinc = boinc_module

    def due(self) -> bool:
        return bool(self.boinc.time_to_checkpoint())

    def saved(self) -> None:
        self.boinc.checkpoint_completed()

    def fraction_done(self, fraction: float) -> None:
        self.boinc.fraction_done(min(1.0, max(0.0, float(fraction))))


def _default_interval() -> float:
    raw = os.environ.get("BOINC_PYMW_CHECKPOINT_INTERVAL", "")
    try:
        return float(raw) if raw else DEFAULT_INTERVAL
    except ValueError:
        raise CheckpointError(
            f"BOINC_PYMW_CHECKPOINT_INTERVAL must be a number of seconds, not {raw!r}") from None


class _TaskCheckpoint:
    def __init__(self, directory: Path, policy):
        self.path = Path(directory) / CHECKPOINT_FILE
        self.policy = policy


_contexts: list[_TaskCheckpoint] = []


def _current() -> _TaskCheckpoint:
    if not _contexts:
        _contexts.append(_TaskCheckpoint(Path.cwd(), IntervalPolicy(_default_interval())))
    return _contexts[-1]


@contextlib.contextmanager
def task_context(directory, *, policy=None):
    """Within this block, checkpoints of the running task live in `directory`.

    `policy` decides when a save is due (:class:`BoincPolicy` under BOINC;
    by default an :class:`IntervalPolicy`).
    """
    Path(directory).mkdir(parents=True, exist_ok=True)
    context = _TaskCheckpoint(Path(directory), policy or IntervalPolicy(_default_interval()))
    _contexts.append(context)
    try:
        yield context
    finally:
        _contexts.remove(context)


def checkpoint(state, *, force: bool = False) -> bool:
    """Save `state` (JSON data) if it is time to; returns True when it was saved."""
    context = _current()
    if not force and not context.policy.due():
        return False
    try:
        data = json.dumps({"format": 1, "state": state}, allow_nan=True).encode()
    except (TypeError, ValueError) as exc:
        if not force:
            context.policy.saved()
        raise CheckpointError(f"checkpoint state must be JSON data: {exc}") from None
    try:
        write_atomic(context.path, data)
    finally:
        context.policy.saved()
    return True


def restore(default=None):
    """The state of the last checkpoint of this task, or `default` if there is none."""
    path = _current().path
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return default
    try:
        document = json.loads(raw)
        return document["state"]
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path} is not a boinc_pymw checkpoint: {exc}") from None


def progress(fraction: float) -> None:
    """Report how much of the task is done (0..1) to BOINC; a no-op elsewhere."""
    _current().policy.fraction_done(fraction)


class _CallableModule(types.ModuleType):
    """``boinc_pymw.checkpoint`` is both this module and the function: once the
    module is imported, Python sets the package attribute to the module, so
    the module must be callable for ``boinc_pymw.checkpoint(state)`` to work."""

    def __call__(self, state, *, force: bool = False) -> bool:
        return checkpoint(state, force=force)


sys.modules[__name__].__class__ = _CallableModule
