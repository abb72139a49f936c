"""Framing and batch codec for the multicore back end's pipes.

A frame on a pipe is ``kind (1 byte) | length (8 bytes, little endian) | body``.
A batch body carries many small records plus one opaque blob per record::

    u32 header length | pickle(header) | blob 0 | blob 1 | ...

``header`` is ``(records, blob_lengths)``. Blobs are pickled separately so
that one bad record (an argument that cannot be pickled, a result whose class
is missing on the other side) fails only itself, and the receiver can load
each blob from a memoryview slice without copying it first.

Everything here is trusted local data between a master and the workers it
started itself; nothing from volunteers ever travels this way.
"""

from __future__ import annotations

import os
import pickle
import struct

FRAME = struct.Struct("<cQ")
HEADER_LEN = struct.Struct("<I")

INIT = b"I"      # master -> worker: settings (sys.path, checkpoint root)
TASKS = b"T"     # master -> worker: a batch of tasks
RESULTS = b"R"   # worker -> master: a batch of outcomes
STARTED = b"S"   # worker -> master: a task with a timeout has started

PROTOCOL = pickle.HIGHEST_PROTOCOL


def encode_batch(kind: bytes, records: list, blobs: list) -> bytes:
    """A whole frame whose body is a batch: small picklable ``records`` plus
    raw ``blobs`` (joined once, with no intermediate copy)."""
    header = pickle.dumps((records, [len(b) for b in blobs]), PROTOCOL)
    size = HEADER_LEN.size + len(header) + sum(len(b) for b in blobs)
    return b"".join([FRAME.pack(kind, size), HEADER_LEN.pack(len(header)), header, *blobs])


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


def write_all(fd: int, data) -> None:
    """Blocking write of all of ``data``."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


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
