"""The ``boinc`` module in pure Python, for runtimes without BOINC's API library.

The Windows runtime installs this file as ``boinc.py``; on Linux the runtime
has the C module built in (``boinc_module.cpp``) and this file serves only as
a fallback and in tests. It has the same API as the C module:

    init()  finish(status=0)  fraction_done(x)  time_to_checkpoint()
    checkpoint_completed()  resolve_filename(name)  init_data()  is_standalone()

What it does and does not do under a BOINC client:

* It does the file side of the app protocol: follows the slot's soft-link
  files, reads ``init_data.xml`` (so it knows it is under a client, its
  checkpoint period and its task), and ``finish()`` writes
  ``boinc_finish_called`` as ``boinc_finish`` does, so the client reports the
  task as done instead of restarting it.
* It does not speak the shared-memory protocol: the client sees no progress
  (it estimates it from elapsed time), cannot suspend the task (the task
  keeps running while the client says "suspended"), and a quit or abort ends
  the task when the client kills the process after its timeout (the launcher
  puts the interpreter in a job object so it dies with the launcher). A task
  resumes from its last checkpoint after such a kill.
"""

from __future__ import annotations

import atexit
import math
import os
import sys
import time
import xml.etree.ElementTree as ElementTree

api_version = "pure-python"

INIT_DATA_FILE = "init_data.xml"
FINISH_FILE = "boinc_finish_called"
DEFAULT_CHECKPOINT_PERIOD = 300.0  # BOINC's default, seconds
_SOFT_LINK_OPEN = "<soft_link>"
_SOFT_LINK_CLOSE = "</soft_link>"

# init_data.xml fields the C module exposes, with their types and defaults.
_INT_FIELDS = ("major_version", "minor_version", "release", "app_version", "userid", "teamid",
               "hostid", "slot", "client_pid", "gpu_device_num")
_FLOAT_FIELDS = ("starting_elapsed_time", "rsc_fpops_est", "rsc_fpops_bound", "rsc_memory_bound",
                 "rsc_disk_bound", "computation_deadline", "fraction_done_start",
                 "fraction_done_end", "ncpus", "checkpoint_period", "wu_cpu_time")
_STR_FIELDS = ("app_name", "user_name", "team_name", "project_dir", "boinc_dir", "wu_name",
               "result_name", "gpu_type")


class _State:
    initialized = False
    standalone = True
    init_data: dict = {}
    checkpoint_period = DEFAULT_CHECKPOINT_PERIOD
    last_checkpoint = 0.0
    fraction_done = 0.0


_state = _State()


def _require_init(what: str) -> None:
    if not _state.initialized:
        raise RuntimeError(f"boinc.{what}() needs boinc.init() first")


def _empty_init_data() -> dict:
    data: dict = {"app_files": [], "project_preferences": ""}
    data.update({name: 0 for name in _INT_FIELDS})
    data.update({name: 0.0 for name in _FLOAT_FIELDS})
    data.update({name: "" for name in _STR_FIELDS})
    return data


def _parse_init_data(path: str) -> dict:
    """init_data.xml as a dict with the C module's keys; DTDs are refused outright."""
    with open(path, "rb") as f:
        text = f.read()
    if b"<!DOCTYPE" in text or b"<!ENTITY" in text:
        raise ValueError(f"{path}: DTDs and entities are not allowed in init_data.xml")
    root = ElementTree.fromstring(text)
    if root.tag != "app_init_data":
        raise ValueError(f"{path}: root element is <{root.tag}>, expected <app_init_data>")
    data = _empty_init_data()
    for child in root:
        value = (child.text or "").strip()
        try:
            if child.tag in _INT_FIELDS:
                data[child.tag] = int(value)
            elif child.tag in _FLOAT_FIELDS:
                data[child.tag] = float(value)
            elif child.tag in _STR_FIELDS:
                data[child.tag] = value
        except ValueError:
            raise ValueError(f"{path}: <{child.tag}> is not a number: {value!r}") from None
        if child.tag == "project_preferences":
            data["project_preferences"] = "".join(ElementTree.tostring(c, encoding="unicode") for c in child)
        elif child.tag == "app_file":
            data["app_files"].append(value)
    return data


def init() -> None:
    """Read init_data.xml if the client wrote one; without it the task runs standalone."""
    if _state.initialized:
        return
    if os.path.isfile(INIT_DATA_FILE):
        _state.init_data = _parse_init_data(INIT_DATA_FILE)
        _state.standalone = False
    else:
        _state.init_data = _empty_init_data()
        _state.standalone = True
    period = _state.init_data["checkpoint_period"]
    _state.checkpoint_period = period if period > 0 else DEFAULT_CHECKPOINT_PERIOD
    _state.last_checkpoint = time.monotonic()
    _state.initialized = True


def is_standalone() -> bool:
    """True when no BOINC client started this task (no init_data.xml in the slot)."""
    _require_init("is_standalone")
    return _state.standalone


def init_data() -> dict:
    """The parsed init_data.xml (zeros and empty strings when standalone)."""
    _require_init("init_data")
    data = dict(_state.init_data)
    data["app_files"] = list(data["app_files"])
    return data


def resolve_filename(name) -> str:
    """The physical path of a logical file name: follows a BOINC soft-link file if it is one."""
    name = os.fsdecode(name)
    try:
        with open(name, "rb") as f:
            head = f.read(4096)
    except OSError:
        return name  # not in the slot (yet): BOINC resolves it to itself too
    text = head.decode("utf-8", "replace").strip()
    if not text.startswith(_SOFT_LINK_OPEN):
        return name
    end = text.find(_SOFT_LINK_CLOSE)
    if end < 0:
        raise OSError(f"cannot resolve BOINC logical name {name!r}: soft-link file has no closing tag")
    target = text[len(_SOFT_LINK_OPEN):end].strip()
    if not target:
        raise OSError(f"cannot resolve BOINC logical name {name!r}: empty soft link")
    return target


def fraction_done(x) -> None:
    """Record progress, 0 <= x <= 1 (kept for the app; see the module doc)."""
    value = float(x)
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"fraction done must be within [0, 1], not {x!r}")
    _require_init("fraction_done")
    _state.fraction_done = value


def time_to_checkpoint() -> bool:
    """True once the checkpoint period (from init_data.xml, else 300 s) has passed."""
    _require_init("time_to_checkpoint")
    return time.monotonic() - _state.last_checkpoint >= _state.checkpoint_period


def checkpoint_completed() -> None:
    """A checkpoint was written: start the next checkpoint period now."""
    _require_init("checkpoint_completed")
    _state.last_checkpoint = time.monotonic()


def finish(status: int = 0) -> None:
    """End the task as boinc_finish does: write boinc_finish_called, exit with ``status``.

    Python's atexit handlers run and stdout/stderr are flushed first. Never returns.
    """
    status = int(status)
    _require_init("finish")
    try:
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                if stream is not None:
                    stream.flush()
            except Exception:
                pass
        with open(FINISH_FILE, "w", encoding="ascii") as f:
            f.write(f"{status}\n")
            f.flush()
            os.fsync(f.fileno())
        os._exit(status)
