"""Framing and batch codec for the multicore back end's pipes.

A frame on a pipe is ``kind (1 byte) | length (8 bytes, little endian) | body``.
A batch body carries many small records plus their opaque blobs::

    u32 header length | pickle(header) | blob 0 | blob 1 | ...

``header`` is ``(records, blob_lengths)``. Blobs are pickled separately so
that one bad record (an argument that cannot be pickled, a result whose class
is missing on the other side) fails only itself, and the receiver can load
each blob from a memoryview slice without copying it first.

Big ``bytes`` values (top-level task arguments and task results) skip pickle:
they are written to the pipe straight from the sender's object (``writev``)
and become ``bytes`` again with one copy on the other side.

Everything here is trusted local data between a master and the workers it
started itself; nothing from volunteers ever travels this way.
"""

from __future__ import annotations

import os
import pickle
import struct

FRAME = struct.Struct("<cQ")
HEADER_LEN = struct.Struct("<I")

INIT = b"I"      # master -> worker: settings (sys.path, checkpoint root, initializer)
TASKS = b"T"     # master -> worker: a batch of tasks
RESULTS = b"R"   # worker -> master: a batch of outcomes
STARTED = b"S"   # worker -> master: a task with a timeout has started
INIT_FAILED = b"F"  # worker -> master: the initializer raised; the worker exits

PROTOCOL = pickle.HIGHEST_PROTOCOL

#: flags of a task record in a TASKS batch
TIMED = 1  # it has a timeout: say when it starts (a STARTED frame)
CHUNK = 2  # a ``map`` chunk: the payload is its calls, run with ``run_chunk``

#: the memory both sides map: u64 tasks started, u64 CLOCK_MONOTONIC
#: nanoseconds at which the running call of a timed chunk began
COUNTER_BYTES = 16

#: ``bytes`` at least this big travel raw; smaller pieces are joined into one
#: buffer before writing
RAW_MIN = 64 * 1024
IOV_MAX = 512


class RawArg:
    """Stands in, inside a pickled argument tuple, for the raw buffer ``index``."""

    __slots__ = ("index",)

    def __init__(self, index: int):
        self.index = index

    def __reduce__(self):
        return RawArg, (self.index,)


def split_raw(args: tuple, kwargs: dict) -> tuple[tuple, dict, list]:
    """Take big ``bytes`` arguments out of ``args``/``kwargs`` (see RawArg)."""
    raws: list = []
    if any(type(a) is bytes and len(a) >= RAW_MIN for a in args):
        new_args = []
        for a in args:
            if type(a) is bytes and len(a) >= RAW_MIN:
                new_args.append(RawArg(len(raws)))
                raws.append(a)
            else:
                new_args.append(a)
        args = tuple(new_args)
    if kwargs and any(type(v) is bytes and len(v) >= RAW_MIN for v in kwargs.values()):
        kwargs = dict(kwargs)
        for k, v in kwargs.items():
            if type(v) is bytes and len(v) >= RAW_MIN:
                kwargs[k] = RawArg(len(raws))
                raws.append(v)
    return args, kwargs, raws


def join_raw(args: tuple, kwargs: dict, raws: list) -> tuple[tuple, dict]:
    """Inverse of :func:`split_raw`; each raw buffer is copied once into bytes."""
    args = tuple(bytes(raws[a.index]) if type(a) is RawArg else a for a in args)
    for k, v in kwargs.items():
        if type(v) is RawArg:
            kwargs[k] = bytes(raws[v.index])
    return args, kwargs


def encode_batch(kind: bytes, records: list, blobs: list) -> list:
    """A whole frame whose body is a batch: small picklable ``records`` plus
    raw ``blobs``, as a list of buffers for ``writev`` (small pieces joined,
    big blobs passed through without a copy)."""
    header = pickle.dumps((records, [len(b) for b in blobs]), PROTOCOL)
    size = HEADER_LEN.size + len(header) + sum(len(b) for b in blobs)
    parts = []
    run = [FRAME.pack(kind, size), HEADER_LEN.pack(len(header)), header]
    for blob in blobs:
        if len(blob) >= RAW_MIN:
            parts.append(b"".join(run))
            parts.append(blob)
            run = []
        else:
            run.append(blob)
    if run:
        parts.append(b"".join(run))
    return parts


def write_some(fd: int, parts: list) -> list:
    """One ``writev``; returns the parts still to write (BlockingIOError if
    a non-blocking pipe is full)."""
    written = os.writev(fd, parts[:IOV_MAX])
    index = 0
    while index < len(parts):
        size = memoryview(parts[index]).nbytes
        if written < size:
            break
        written -= size
        index += 1
    rest = parts[index:]
    if written:
        rest[0] = memoryview(rest[0]).cast("B")[written:]
    return rest


def decode_batch(body) -> tuple[list, list]:
    """Inverse of :func:`encode_batch`; blobs come back as memoryviews."""
    view = memoryview(body)
    (hlen,) = HEADER_LEN.unpack_from(view)
    start = HEADER_LEN.size
    records, lengths = pickle.loads(view[start:start + hlen])
    pos = start + hlen
    blobs = []
    for n in lengths:
        blobs.append(view[pos:pos + n])
        pos += n
    return records, blobs


def frame(kind: bytes, body: bytes) -> bytes:
    return FRAME.pack(kind, len(body)) + body


def read_exact(fd: int, n: int) -> bytearray | None:
    """Blocking read of exactly ``n`` bytes; None on end of file."""
    buf = bytearray(n)
    view = memoryview(buf)
    pos = 0
    while pos < n:
        got = os.readv(fd, [view[pos:]])
        if got == 0:
            return None
        pos += got
    return buf


def read_frame(fd: int):
    """Blocking read of one frame: ``(kind, body)`` or None on end of file."""
    head = read_exact(fd, FRAME.size)
    if head is None:
        return None
    kind, n = FRAME.unpack(head)
    body = read_exact(fd, n) if n else bytearray()
    if body is None:
        return None
    return kind, body


def write_all(fd: int, parts: list) -> None:
    """Blocking write of all of ``parts`` (a list of buffers)."""
    while parts:
        parts = write_some(fd, parts)


def grow_pipe(fd: int, size: int = 1 << 20) -> None:
    """Ask for a bigger pipe buffer (fewer wake-ups for big payloads)."""
    try:
        import fcntl

        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), size)
    except OSError:
        pass


class FrameReader:
    """Non-blocking, incremental frame parser for the master's event loop."""

    def __init__(self, fd: int):
        self.fd = fd
        self._head = bytearray()
        self._body = None
        self._pos = 0
        self._kind = b""

    def read(self) -> tuple[list, bool]:
        """Read what the pipe holds now: ``(frames, eof)``."""
        frames = []
        while True:
            try:
                if self._body is None:
                    chunk = os.read(self.fd, FRAME.size - len(self._head))
                    if not chunk:
                        return frames, True
                    self._head += chunk
                    if len(self._head) < FRAME.size:
                        continue
                    self._kind, n = FRAME.unpack(self._head)
                    self._head.clear()
                    self._body = bytearray(n)
                    self._pos = 0
                    if n == 0:
                        frames.append((self._kind, self._body))
                        self._body = None
                    continue
                got = os.readv(self.fd, [memoryview(self._body)[self._pos:]])
                if got == 0:
                    return frames, True
                self._pos += got
                if self._pos == len(self._body):
                    frames.append((self._kind, self._body))
                    self._body = None
            except BlockingIOError:
                return frames, False
            except (ConnectionResetError, BrokenPipeError):
                return frames, True
