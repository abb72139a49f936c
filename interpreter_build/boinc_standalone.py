"""The ``boinc`` module in pure Python, for runtimes without BOINC's API library.

The Windows runtime installs this file as ``boinc.py``; on Linux the runtime
has the C module built in (``boinc_module.cpp``) and this file serves as a
fallback and in tests. Same API as the C module:

    init()  finish(status=0)  fraction_done(x)  time_to_checkpoint()
    checkpoint_completed()  resolve_filename(name)  init_data()  is_standalone()

Without ``init_data.xml`` in the working directory the task runs standalone.
Under a BOINC client it does, in Python, what BOINC's API library does:

* the file side: follows the slot's soft-link files, reads ``init_data.xml``
  (task names, checkpoint period, CPU time of earlier episodes), and
  ``finish()`` writes ``boinc_finish_called`` so the client reports the task
  as done instead of restarting it;
* the shared-memory side, when the client's segment is there (the file
  ``boinc_mmap_file`` on Unix, else the System V segment ``<shm_key>``; on
  Windows the named mapping ``shm_<comm_obj_name>``, tried with and without
  ``Global\\``)::

      client --process_control_request--> <quit/> <abort/> <suspend/> <resume/>
      client --heartbeat----------------> <heartbeat/> once a second
      app    --app_status---------------> CPU time, checkpoint CPU time, fraction done

  8 channels of 1024 bytes; byte 0 of a channel is 1 while it holds an unread
  message. A daemon thread polls every 0.1 s, reports status every second,
  ends the task if heartbeats stop and the client process is gone, exits on
  quit/abort, and on suspend pauses the main thread until resume (at its next
  bytecode, as BOINC's API pauses at its next timer signal; a long C call
  finishes first, other threads run on). Quit and suspend wait while the task is between
  ``time_to_checkpoint()`` and ``checkpoint_completed()``, BOINC's critical
  section. If the segment cannot be found the task runs on with the file side.
"""

from __future__ import annotations

import atexit
import ctypes
import math
import mmap
import os
import sys
import threading
import time
import xml.etree.ElementTree as ElementTree

api_version = "pure-python"

INIT_DATA_FILE = "init_data.xml"
FINISH_FILE = "boinc_finish_called"
MMAPPED_FILE_NAME = "boinc_mmap_file"
DEFAULT_CHECKPOINT_PERIOD = 300.0  # BOINC's default, seconds
HEARTBEAT_TIMEOUT = 30.0           # BOINC's: then check whether the client still lives
EXIT_ABORTED_BY_CLIENT = 194       # BOINC's exit status for an aborted task
MSG_CHANNEL_SIZE = 1024
CHANNELS = ("process_control_request", "process_control_reply", "graphics_request",
            "graphics_reply", "heartbeat", "app_status", "trickle_up", "trickle_down")
SHARED_MEM_SIZE = MSG_CHANNEL_SIZE * len(CHANNELS)
_POLL_SECONDS = 0.1
_STATUS_SECONDS = 1.0
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
_PRIVATE_FIELDS = ("comm_obj_name", "shm_key")  # how to find the shared memory; not exposed


class _State:
    initialized = False
    standalone = True
    init_data: dict = {}
    private: dict = {}
    checkpoint_period = DEFAULT_CHECKPOINT_PERIOD
    last_checkpoint = 0.0
    checkpoint_cpu_time = 0.0
    fraction_done = 0.0
    in_critical_section = False
    channels = None  # _Channels when attached to the client
    suspended = False  # the main thread is paused by <suspend/>


_state = _State()


def _require_init(what: str) -> None:
    if not _state.initialized:
        raise RuntimeError(f"boinc.{what}() needs boinc.init() first")


# -- init_data.xml -----------------------------------------------------------------

def _empty_init_data() -> dict:
    data: dict = {"app_files": [], "project_preferences": ""}
    data.update({name: 0 for name in _INT_FIELDS})
    data.update({name: 0.0 for name in _FLOAT_FIELDS})
    data.update({name: "" for name in _STR_FIELDS})
    return data


def _parse_init_data(path: str):
    """(public fields with the C module's keys, private fields); DTDs are refused."""
    with open(path, "rb") as f:
        text = f.read()
    if b"<!DOCTYPE" in text or b"<!ENTITY" in text:
        raise ValueError(f"{path}: DTDs and entities are not allowed in init_data.xml")
    root = ElementTree.fromstring(text)
    if root.tag != "app_init_data":
        raise ValueError(f"{path}: root element is <{root.tag}>, expected <app_init_data>")
    data, private = _empty_init_data(), {}
    for child in root:
        value = (child.text or "").strip()
        try:
            if child.tag in _INT_FIELDS:
                data[child.tag] = int(value)
            elif child.tag in _FLOAT_FIELDS:
                data[child.tag] = float(value)
        except ValueError:
            raise ValueError(f"{path}: <{child.tag}> is not a number: {value!r}") from None
        if child.tag in _STR_FIELDS:
            data[child.tag] = value
        elif child.tag in _PRIVATE_FIELDS:
            private[child.tag] = value
        elif child.tag == "project_preferences":
            data["project_preferences"] = "".join(ElementTree.tostring(c, encoding="unicode") for c in child)
        elif child.tag == "app_file":
            data["app_files"].append(value)
    return data, private


# -- shared memory -------------------------------------------------------------------

class _Channels:
    """BOINC's SHARED_MEM message channels over SHARED_MEM_SIZE bytes (an mmap or a memoryview)."""

    def __init__(self, memory: mmap.mmap):
        self.memory = memory

    def _offset(self, channel: str) -> int:
        return CHANNELS.index(channel) * MSG_CHANNEL_SIZE

    def get(self, channel: str):
        """The pending message of ``channel`` (and mark it read), or None."""
        at = self._offset(channel)
        if self.memory[at] == 0:
            return None
        raw = bytes(self.memory[at + 1:at + MSG_CHANNEL_SIZE])
        self.memory[at] = 0
        return raw.split(b"\0", 1)[0].decode("utf-8", "replace")

    def send(self, channel: str, text: str) -> bool:
        """Write a message unless the previous one is still unread."""
        at = self._offset(channel)
        if self.memory[at] != 0:
            return False
        data = text.encode()[:MSG_CHANNEL_SIZE - 2] + b"\0"
        self.memory[at + 1:at + 1 + len(data)] = data
        self.memory[at] = 1
        return True


def _attach_shared_memory(private: dict):
    if sys.platform == "win32":
        return _attach_windows_mapping(private.get("comm_obj_name", ""))
    if os.path.isfile(MMAPPED_FILE_NAME) and os.path.getsize(MMAPPED_FILE_NAME) >= SHARED_MEM_SIZE:
        with open(MMAPPED_FILE_NAME, "r+b") as f:
            return _Channels(mmap.mmap(f.fileno(), SHARED_MEM_SIZE))
    return _attach_system_v_segment(private.get("shm_key", ""))


def _attach_system_v_segment(shm_key: str):
    """The System V segment older app versions (and ``boinc --run_test_app``) are given."""
    try:
        key = int(shm_key)
    except ValueError:
        return None
    if key in (0, -1):
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    libc.shmget.restype = ctypes.c_int
    libc.shmget.argtypes = (ctypes.c_int, ctypes.c_size_t, ctypes.c_int)
    libc.shmat.restype = ctypes.c_void_p
    libc.shmat.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_int)
    segment = libc.shmget(key, 0, 0)
    if segment < 0:
        return None
    address = libc.shmat(segment, None, 0)
    if address in (None, ctypes.c_void_p(-1).value):
        return None
    return _Channels(memoryview((ctypes.c_ubyte * SHARED_MEM_SIZE).from_address(address)).cast("B"))


def _attach_windows_mapping(comm_obj_name: str):
    """The client's named mapping ``shm_<comm_obj_name>`` (``Global\\`` when BOINC runs sandboxed)."""
    if not comm_obj_name:
        return None
    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    kernel32.OpenFileMappingW.restype = ctypes.c_void_p
    kernel32.OpenFileMappingW.argtypes = (ctypes.c_uint32, ctypes.c_int, ctypes.c_wchar_p)
    kernel32.MapViewOfFile.restype = ctypes.c_void_p
    kernel32.MapViewOfFile.argtypes = (ctypes.c_void_p, ctypes.c_uint32, ctypes.c_uint32,
                                       ctypes.c_uint32, ctypes.c_size_t)
    file_map_all_access = 0xF001F
    for name in ("Global\\shm_" + comm_obj_name, "shm_" + comm_obj_name):
        handle = kernel32.OpenFileMappingW(file_map_all_access, 0, name)
        if not handle:
            continue
        address = kernel32.MapViewOfFile(handle, file_map_all_access, 0, 0, SHARED_MEM_SIZE)
        if address:  # the handle stays open for the life of the task, as the view needs it
            return _Channels(memoryview((ctypes.c_ubyte * SHARED_MEM_SIZE).from_address(address)).cast("B"))
    return None


def _process_alive(pid: int) -> bool:
    if pid <= 0:
        return True  # unknown: never give up on the client
    if sys.platform == "win32":
        kernel32 = ctypes.WinDLL("kernel32")
        kernel32.OpenProcess.restype = ctypes.c_void_p
        kernel32.OpenProcess.argtypes = (ctypes.c_uint32, ctypes.c_int, ctypes.c_uint32)
        kernel32.WaitForSingleObject.argtypes = (ctypes.c_void_p, ctypes.c_uint32)
        kernel32.CloseHandle.argtypes = (ctypes.c_void_p,)
        handle = kernel32.OpenProcess(0x00100000, 0, pid)  # SYNCHRONIZE
        if not handle:
            return False
        try:
            return kernel32.WaitForSingleObject(handle, 0) == 0x102  # WAIT_TIMEOUT: still running
        finally:
            kernel32.CloseHandle(handle)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _cpu_time() -> float:
    return _state.init_data.get("wu_cpu_time", 0.0) + time.process_time()


def _status_message() -> str:
    return (f"<current_cpu_time>{_cpu_time():e}</current_cpu_time>\n"
            f"<checkpoint_cpu_time>{_state.checkpoint_cpu_time:e}</checkpoint_cpu_time>\n"
            f"<fraction_done>{_state.fraction_done:e}</fraction_done>\n")


# Suspension pauses the task's main thread the way BOINC's API does on Unix
# (it sleeps inside a signal handler): a pending call, which CPython runs in
# the main thread between two bytecodes, waits until the task is resumed.
_resumed = threading.Event()
_resumed.set()


def _pause_main_thread(_unused) -> int:
    _state.suspended = True
    try:
        _resumed.wait()
    finally:
        _state.suspended = False
    return 0


_PAUSE_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)(_pause_main_thread)


def _suspend_main_thread() -> None:
    if _resumed.is_set():
        _resumed.clear()
        ctypes.pythonapi.Py_AddPendingCall(_PAUSE_CALLBACK, None)


def _resume_main_thread() -> None:
    _resumed.set()


class _ClientLink(threading.Thread):
    """The daemon thread that talks to the client through the channels."""

    def __init__(self, channels: _Channels, client_pid: int):
        super().__init__(name="boinc-client-link", daemon=True)
        self.channels = channels
        self.client_pid = client_pid
        self.last_heartbeat = time.monotonic()
        self.last_status = 0.0
        self.pending_quit = None  # exit status waiting for the critical section to end
        self.pending_suspend = False

    def run(self) -> None:
        while True:
            self.poll()
            time.sleep(_POLL_SECONDS)

    def poll(self) -> None:
        now = time.monotonic()
        if self.channels.get("heartbeat") is not None:
            self.last_heartbeat = now
        elif now - self.last_heartbeat > HEARTBEAT_TIMEOUT and not _process_alive(self.client_pid):
            os._exit(0)  # the client is gone; it restarts the task from its checkpoint later
        request = self.channels.get("process_control_request") or ""
        if "<abort/>" in request:
            self.pending_quit = EXIT_ABORTED_BY_CLIENT
        elif "<quit/>" in request:
            self.pending_quit = 0
        if "<suspend/>" in request:
            self.pending_suspend = True
        if "<resume/>" in request:
            self.pending_suspend = False
            _resume_main_thread()
        if now - self.last_status >= _STATUS_SECONDS and self.channels.send("app_status", _status_message()):
            self.last_status = now
        if self.pending_quit is not None and (_state.suspended or not _state.in_critical_section):
            os._exit(self.pending_quit)
        if self.pending_suspend and not _state.in_critical_section:
            self.pending_suspend = False
            _suspend_main_thread()


# -- the API -------------------------------------------------------------------------

def init() -> None:
    """Read init_data.xml and attach to the client; without init_data.xml run standalone."""
    if _state.initialized:
        return
    if os.path.isfile(INIT_DATA_FILE):
        _state.init_data, _state.private = _parse_init_data(INIT_DATA_FILE)
        _state.standalone = False
    else:
        _state.init_data, _state.private = _empty_init_data(), {}
        _state.standalone = True
    period = _state.init_data["checkpoint_period"]
    _state.checkpoint_period = period if period > 0 else DEFAULT_CHECKPOINT_PERIOD
    _state.last_checkpoint = time.monotonic()
    _state.checkpoint_cpu_time = _state.init_data["wu_cpu_time"]
    _state.initialized = True
    if not _state.standalone:
        _state.channels = _attach_shared_memory(_state.private)
        if _state.channels is not None:
            _ClientLink(_state.channels, _state.init_data["client_pid"]).start()


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
    """Report progress, 0 <= x <= 1 (sent to the client with the next status message)."""
    value = float(x)
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"fraction done must be within [0, 1], not {x!r}")
    _require_init("fraction_done")
    _state.fraction_done = value


def time_to_checkpoint() -> bool:
    """True once the checkpoint period has passed; then quit/suspend wait for checkpoint_completed()."""
    _require_init("time_to_checkpoint")
    if time.monotonic() - _state.last_checkpoint >= _state.checkpoint_period:
        _state.in_critical_section = True
        return True
    return False


def checkpoint_completed() -> None:
    """A checkpoint was written: leave the critical section, start the next period."""
    _require_init("checkpoint_completed")
    _state.last_checkpoint = time.monotonic()
    _state.checkpoint_cpu_time = _cpu_time()
    _state.in_critical_section = False


def finish(status: int = 0) -> None:
    """End the task as boinc_finish does: write boinc_finish_called, exit with ``status``.

    Python's atexit handlers run and stdout/stderr are flushed first; the
    client gets a last status message. Never returns.
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
        if _state.channels is not None:
            _state.channels.get("app_status")  # drop an unread one: the final word counts
            _state.channels.send("app_status", _status_message())
        with open(FINISH_FILE, "w", encoding="ascii") as f:
            f.write(f"{status}\n")
            f.flush()
            os.fsync(f.fileno())
        os._exit(status)
