"""The MPI back end's wire protocol: message tags, payload encoding, polling.

Every message is a head of raw bytes (``MPI.BYTE``) whose tag says what it
is, followed by one DATA message per big ``bytes`` object it carries, so a
1 MB payload is sent from its own buffer instead of being copied into a
pickle. The head holds the cloudpickle payload. Inside one MPI job all ranks
belong to the same user, so pickled data is trusted here (this is never used
for data that comes back from BOINC volunteers).

    master --TASKS ids | [(id, fn, args, kwargs, timeout), ...]--> worker
    master <--RESULTS [(id, outcome...), ...], busy seconds-- worker
    master <--HEARTBEAT (empty, every interval)------------- worker
    master --STOP {"finalize": bool}-----------------------> worker
    master <--STOPPED (empty; the rank's last message)------ worker
    master <--BYE "why" (worker loop failed, rank exits)---- worker
    master --INIT pickled (initializer, initargs)-----------> worker (before its first task)

The master receives everything up to each worker's STOPPED before it
finalizes or disconnects: MPICH 4.1 and later refuse MPI_Finalize (and
Comm_disconnect) while a received message is still unmatched, and a
heartbeat may be on its way when STOP arrives.
"""

from __future__ import annotations

import io
import os
import pickle
import struct
import time
import traceback
from typing import Any, Optional

import cloudpickle

TASKS = 11
RESULTS = 12
HEARTBEAT = 13
STOP = 14
BYE = 15
DATA = 16      # a big buffer that follows its message's head
STOPPED = 17   # a worker's answer to STOP: nothing more comes from it
INIT = 18      # the Master's initializer: run once before the next tasks

#: seconds between a worker's heartbeats (the master's timeout is larger)
HEARTBEAT_INTERVAL = 1.0

#: bytes objects at least this big travel as their own MPI message instead of
#: being copied into the pickle
BIG = 64 << 10

# Outcome records inside a RESULTS payload. Values that could run code while
# they are unpickled (anything but the plain types below) and exceptions
# travel pickled on their own, so the master unpickles each one apart: one
# that raises (even SystemExit) fails its own task only.
OK = "ok"            # (id, OK, value): a plain value
PICKLED = "pickled"  # (id, PICKLED, pickled value)
RAISED = "raised"    # (id, RAISED, pickled exception, traceback_text)
FAILED = "failed"    # (id, FAILED, type_name, message, traceback_text): not picklable

PLAIN_TYPES = frozenset({type(None), bool, int, float, complex, str, bytes})

_HEAD = struct.Struct("<II")  # number of big buffers, length of the prefix pickle


class _Pickler(cloudpickle.Pickler):
    """cloudpickle that sets big ``bytes`` aside instead of copying them."""

    def __init__(self, file, big: list):
        super().__init__(file, protocol=5)
        self._big = big

    def persistent_id(self, obj):
        if type(obj) is bytes and len(obj) >= BIG:
            self._big.append(obj)
            return len(self._big) - 1
        return None


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, big: list):
        super().__init__(file)
        self._big = big

    def persistent_load(self, pid):
        return bytes(self._big[pid])


def dumps(obj: Any) -> bytes:
    return cloudpickle.dumps(obj, protocol=5)


def loads(data) -> Any:
    return cloudpickle.loads(data)


def encode(obj: Any, prefix: Any = None) -> list:
    """One message as MPI frames: ``[head, big buffer, ...]``.

    ``prefix`` is pickled on its own (the master puts item ids there, so a
    worker can name the items whose calls fail to unpickle)."""
    big: list = []
    if has_big_bytes(obj):
        file = io.BytesIO()
        _Pickler(file, big).dump(obj)
        body = file.getbuffer()
    else:  # the plain pickler: persistent_id costs a Python call per object
        body = dumps(obj)
    pre = dumps(prefix)
    return [_HEAD.pack(len(big), len(pre)) + pre + body, *big]


def has_big_bytes(obj: Any, budget: int = 1000) -> bool:
    """Whether ``obj`` holds a big ``bytes`` near the top: a bounded walk
    through tuples, lists and dict values. A miss only costs a copy."""
    queue, seen = [obj], 0
    while queue and seen < budget:
        item = queue.pop()
        seen += 1
        kind = type(item)
        if kind is bytes:
            if len(item) >= BIG:
                return True
        elif kind is tuple or kind is list:
            queue.extend(item)
        elif kind is dict:
            queue.extend(item.values())
    return False


def decode_prefix(frames: list) -> Any:
    view = memoryview(frames[0])
    _, pre = _HEAD.unpack_from(view)
    return loads(view[_HEAD.size:_HEAD.size + pre])


def decode(frames: list) -> Any:
    view = memoryview(frames[0])
    _, pre = _HEAD.unpack_from(view)
    return _Unpickler(io.BytesIO(view[_HEAD.size + pre:]), frames[1:]).load()


def isend(MPI, comm, dest: int, tag: int, frames: list) -> list:
    """Start sending one message; keep the requests (and frames) until done."""
    requests = [comm.Isend([frames[0], MPI.BYTE], dest=dest, tag=tag)]
    requests += [comm.Isend([f, MPI.BYTE], dest=dest, tag=DATA) for f in frames[1:]]
    return requests


def send(MPI, comm, dest: int, tag: int, frames: list) -> None:
    MPI.Request.Waitall(isend(MPI, comm, dest, tag, frames))


def receive(MPI, comm, status) -> tuple[int, int, list]:
    """Receive the message whose head ``status`` (from Iprobe) describes, with
    its big buffers: ``(source, tag, frames)``."""
    source, tag = status.Get_source(), status.Get_tag()
    head = bytearray(status.Get_count(MPI.BYTE))
    comm.Recv([head, MPI.BYTE], source=source, tag=tag)
    frames = [head]
    if len(head) >= _HEAD.size:
        nbig, _ = _HEAD.unpack_from(head)
        data_status = MPI.Status()
        for _ in range(nbig):
            comm.Probe(source=source, tag=DATA, status=data_status)
            buf = bytearray(data_status.Get_count(MPI.BYTE))
            comm.Recv([buf, MPI.BYTE], source=source, tag=DATA)
            frames.append(buf)
    return source, tag, frames


def value_record(item_id: int, value: Any) -> tuple:
    """How a task's result travels (see OK and PICKLED); a result that does not
    pickle becomes the pickler's own exception, with a note."""
    if type(value) in PLAIN_TYPES:
        return (item_id, OK, value)
    try:
        return (item_id, PICKLED, dumps(value))
    except BaseException as exc:
        exc.add_note(f"(raised while pickling the task's result, a {type(value).__name__}, "
                     f"to send it back to the master)")
        return raised_record(item_id, exc)


def raised_record(item_id: int, exc: BaseException) -> tuple:
    """How a task's exception travels: the exception itself when it pickles
    (so the master re-raises the same type), else its type, text and traceback."""
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        blob = dumps(exc)
        loads(blob)  # some exception classes pickle but do not unpickle
    except BaseException:
        return (item_id, FAILED, type(exc).__name__, str(exc), tb)
    return (item_id, RAISED, blob, tb)


class Backoff:
    """How an idle loop waits for the next message without a blocking call
    (MPICH's blocking calls spin a CPU that the workers need): for the first
    ``fast_for`` seconds of idleness it only yields the CPU, so a burst of
    small tasks keeps a short round trip; then it sleeps ever longer, up to
    ``longest``, so a rank idle for long costs next to nothing."""

    def __init__(self, longest: float = 1e-3, fast_for: float = 0.005):
        self.longest, self.fast_for = longest, fast_for
        self.reset()

    def reset(self) -> None:
        self._idle_since = None
        self._delay = 20e-6

    def wait(self, longest: Optional[float] = None, fast_for: Optional[float] = None) -> None:
        now = time.monotonic()
        if self._idle_since is None:
            self._idle_since = now
        if now - self._idle_since < (self.fast_for if fast_for is None else fast_for):
            os.sched_yield()
            return
        time.sleep(self._delay)
        self._delay = min(self._delay * 2, self.longest if longest is None else longest)
