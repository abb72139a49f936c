"""Atomic file writes: readers see the old file or the new one, never a part.

Shipped in the volunteer runtime (``checkpoint`` and the worker use it), so
standard library only; interpreter_build's WORKER_FILES list it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_atomic(path, data: bytes) -> None:
    """Write `data` to `path` (str or Path) via a temporary file in the same
    directory (``.<name>.*.tmp``), fsynced, then renamed over `path`."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
