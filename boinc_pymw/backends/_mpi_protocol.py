"""The MPI back end's wire protocol: message tags, payload encoding, polling.

Every message is one MPI message of raw bytes (``MPI.BYTE``) whose tag says
what it is; the bytes are a cloudpickle payload. Inside one MPI job all ranks
belong to the same user, so pickled data is trusted here (this is never used
for data that comes back from BOINC volunteers).

    master --TASKS ids + [(id, fn, args, kwargs, timeout), ...]--> worker
    master <--RESULTS [(id, outcome...), ...], busy seconds-- worker
    master <--HEARTBEAT (empty, every interval)------------- worker
    master --STOP {"finalize": bool}-----------------------> worker
    master <--BYE "why" (worker loop failed, rank exits)---- worker
"""

from __future__ import annotations

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

#: seconds between a worker's heartbeats (the master's timeout is larger)
HEARTBEAT_INTERVAL = 1.0

# Outcome records inside a RESULTS payload.
OK = "ok"            # (id, OK, value)
RAISED = "raised"    # (id, RAISED, exception, traceback_text)
FAILED = "failed"    # (id, FAILED, type_name, message, traceback_text): not picklable


def dumps(obj: Any) -> bytes:
    return cloudpickle.dumps(obj, protocol=5)


def loads(data) -> Any:
    return cloudpickle.loads(data)


def join_batch(ids: list, calls: bytes) -> bytes:
    """A TASKS message: the item ids in a header that always unpickles, then
    the calls (which may not, e.g. when a module is missing on the worker)."""
    head = dumps(ids)
    return struct.pack("<Q", len(head)) + head + calls


def split_batch(data) -> tuple[list, memoryview]:
    view = memoryview(data)
    (size,) = struct.unpack_from("<Q", view)
    return loads(view[8:8 + size]), view[8 + size:]


def receive(MPI, comm, source: int, status) -> tuple[int, int, bytearray]:
    """Receive the message ``status`` (from Iprobe) describes: (source, tag, bytes)."""
    source, tag = status.Get_source(), status.Get_tag()
    buf = bytearray(status.Get_count(MPI.BYTE))
    comm.Recv([buf, MPI.BYTE], source=source, tag=tag)
    return source, tag, buf


def raised_record(item_id: int, exc: BaseException) -> tuple:
    """How a task's exception travels: the exception itself when it pickles
    (so the master re-raises the same type), else its type, text and traceback."""
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        dumps(exc)
    except Exception:
        return (item_id, FAILED, type(exc).__name__, str(exc), tb)
    return (item_id, RAISED, exc, tb)


class Backoff:
    """Sleep a little longer each idle poll, so idle ranks do not burn a CPU
    (MPICH's blocking calls spin) while busy ranks answer quickly."""

    def __init__(self, first: float = 20e-6, longest: float = 1e-3, spins: int = 20):
        self.first, self.longest, self.spins = first, longest, spins
        self.reset()

    def reset(self) -> None:
        self._count = 0
        self._delay = self.first

    def wait(self, limit: Optional[float] = None) -> None:
        self._count += 1
        if self._count <= self.spins:
            return
        delay = self._delay if limit is None else min(self._delay, limit)
        time.sleep(delay)
        self._delay = min(self._delay * 2, self.longest)
