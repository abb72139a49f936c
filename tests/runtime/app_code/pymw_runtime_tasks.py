"""Task functions the runtime tests ship as an app version's own code (app_code.zip)."""

import json
import os
import signal
import sys
import time

from boinc_pymw import checkpoint, restore
from boinc_pymw.checkpoint import progress


def add(a, b):
    return a + b


def _write_marker(path):
    """A private helper: never an entry point (tests/runtime/test_entry_points.py)."""
    with open(path, "w") as fh:
        fh.write("private helper ran")


def fail(message):
    raise ValueError(message)


class Widget:
    """Its default repr carries a memory address."""


def fail_deep(text):
    """Fails inside the standard library, chained, with machine-specific text in the message."""
    try:
        json.loads(text)
    except ValueError as exc:
        raise RuntimeError(f"cannot parse {text!r} for {Widget()!r}; "
                           f"slot {os.getcwd()}, code {os.path.abspath(__file__)}") from exc


def crash():
    """A hard crash: reads an unmapped address."""
    import ctypes

    return ctypes.string_at(8, 1)  # (string_at(0, n) reads nothing: no fault)


def not_json():
    return {1, 2, 3}


def sum_of_squares(n, step_seconds):
    """A long job: checkpoints after every step and logs where each episode started."""
    state = restore(default={"i": 0, "total": 0})
    with open("episodes.log", "a") as log:
        log.write(f"{state['i']}\n")
    i, total = state["i"], state["total"]
    while i < n:
        time.sleep(step_seconds)
        total += i * i
        i += 1
        checkpoint({"i": i, "total": total})
        progress(i / n)
    return {"n": n, "total": total}


def environment():
    """What the interpreter looks like from inside a task."""
    import boinc

    got = []
    signal.signal(signal.SIGUSR1, lambda *_: got.append("usr1"))
    os.kill(os.getpid(), signal.SIGUSR1)
    time.sleep(0.3)  # across several of BOINC's 10 Hz SIGALRM ticks
    return {
        "sys_path": sys.path,
        "executable": sys.executable,
        "standalone": boinc.is_standalone(),
        "wu_name": boinc.init_data()["wu_name"],
        "usr1": got,
        "sigint_is_python": signal.getsignal(signal.SIGINT) is signal.default_int_handler,
    }
