"""Are the app's daemons running? What bin/start's ``status`` sees, read-only.

BOINC's ``bin/start`` (sched/start) runs each ``<daemon>`` of config.xml
double-forked, with its output appended to ``log_<host>/<output or
program.log>``, its pid written to ``pid_<host>/<pid_file or program.pid>``,
and a POSIX lock (``lockf``) held on ``pid_<host>/<lock_file or
output.lock or program.lock>`` for as long as it lives. ``bin/start --cron``
restarts a daemon that exited, writing ``[time] Executing command: CMD`` to
its log each time. So a daemon is running when its lock is held (checked
with ``F_GETLK``, which never takes the lock: taking it, as ``bin/start
status`` does, could make a daemon starting that instant think it is
already running), and it keeps exiting when it is not running although its
log shows several starts.

Only daemons of this machine (``<host>`` of the daemon, else of the project,
equal to this host's short name, as bin/start compares them) are checked.
"""

from __future__ import annotations

import fcntl
import os
import shlex
import socket
import struct
from dataclasses import dataclass, field
from typing import Optional

#: how much of a log's end is read (the last lines quoted in warnings)
LOG_TAIL_BYTES = 64 * 1024
START_MARK = "] Executing command:"


@dataclass
class DaemonState:
    """One ``<daemon>`` of an app: is it running, how often it started, its log's end."""

    cmd: str
    program: str
    host: str
    log_path: str
    lock_path: str
    pid_path: str
    running: Optional[bool]          # None: runs on another host, cannot be checked
    pid: Optional[int] = None
    starts: int = 0                  # "Executing command" lines in the log's tail
    disabled: bool = False
    last_lines: list = field(default_factory=list)

    @property
    def state(self) -> str:
        if self.disabled:
            return "disabled"
        if self.running is None:
            return f"on {self.host} (not checked)"
        if self.running:
            return f"running (pid {self.pid})" if self.pid else "running"
        if self.starts > 1:
            return f"NOT RUNNING (started {self.starts} times: keeps exiting)"
        return "NOT RUNNING"


def _app_option(words: list) -> Optional[str]:
    for i, word in enumerate(words):
        for prefix in ("--app", "-app"):
            if word == prefix and i + 1 < len(words):
                return words[i + 1]
            if word.startswith(prefix + "="):
                return word[len(prefix) + 1:]
    return None


def _program(words: list) -> str:
    first = words[1] if words and words[0] == "run_in_ops" and len(words) > 1 else \
        (words[0] if words else "")
    return os.path.basename(first)


def lock_holder(path: str) -> Optional[int]:
    """The pid holding a POSIX lock on ``path`` (0 if unknown), None if unlocked."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        # struct flock on Linux: short l_type, l_whence; off_t l_start, l_len; pid_t l_pid
        request = struct.pack("hhqqi", fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0) + b"\0" * 4
        try:
            reply = fcntl.fcntl(fd, fcntl.F_GETLK, request)
        except OSError:
            return None
        l_type, _whence, _start, _len, pid = struct.unpack("hhqqi", reply[:28])
        return None if l_type == fcntl.F_UNLCK else pid
    finally:
        os.close(fd)


def _pid_alive(path: str) -> Optional[int]:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            pid = int(f.readline().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def log_tail(path: str, max_bytes: int = LOG_TAIL_BYTES) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read(max_bytes)
    except OSError:
        return ""
    return data.decode("utf-8", "replace")


def app_daemons(project, app_name: str, lines: int = 10) -> list[DaemonState]:
    """The ``<daemon>`` entries of config.xml given ``--app app_name``, and their state."""
    config = project.config
    here = socket.gethostname().split(".")[0]      # as bin/start names pid_/log_ dirs
    states = []
    for daemon in getattr(config, "daemons", ()):
        try:
            words = shlex.split(daemon.cmd)
        except ValueError:
            continue
        if _app_option(words) != app_name:
            continue
        program = _program(words)
        host = daemon.host or config.host or here
        pid_dir = os.path.join(project.path, f"pid_{host}")
        log_dir = os.path.join(project.path, f"log_{host}")
        output = daemon.output
        log_path = os.path.join(log_dir, output or f"{program}.log")
        lock_name = daemon.lock_file or (f"{output}.lock" if output and not
                                         output.startswith("/dev/") else f"{program}.lock")
        state = DaemonState(cmd=daemon.cmd, program=program, host=host, log_path=log_path,
                            lock_path=os.path.join(pid_dir, lock_name),
                            pid_path=os.path.join(pid_dir, daemon.pid_file or f"{program}.pid"),
                            running=None, disabled=bool(daemon.disabled))
        tail = log_tail(log_path)
        state.starts = tail.count(START_MARK)
        state.last_lines = tail.rstrip("\n").splitlines()[-lines:] if tail else []
        if host == here:
            holder = lock_holder(state.lock_path)
            pid = _pid_alive(state.pid_path)
            state.running = holder is not None
            state.pid = holder or pid
        states.append(state)
    return states
