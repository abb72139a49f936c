"""Optional progress bars for long batches.

``tqdm`` draws the bar when it is installed (``pip install boinc-pymw[progress]``);
without it a plain one-line counter goes to stderr, so ``progress=True`` never
fails for a missing optional dependency.
"""

from __future__ import annotations

import concurrent.futures
import sys
import time
from typing import Iterable, Iterator, Optional


class _LineCounter:
    """A minimal stand-in for tqdm: ``done/total`` on one stderr line."""

    def __init__(self, total: Optional[int], desc: str, file=None):
        self.total, self.desc, self.n = total, desc, 0
        self.file = file or sys.stderr
        self._last = 0.0

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self._last >= 0.2 or self.n == self.total:
            self._last = now
            total = "?" if self.total is None else self.total
            print(f"\r{self.desc}: {self.n}/{total}", end="", file=self.file, flush=True)

    def close(self) -> None:
        print(file=self.file, flush=True)


def bar(total: Optional[int], desc: str = "tasks", file=None):
    """A progress bar object with ``update(n)`` and ``close()``."""
    try:
        from tqdm import tqdm
    except ImportError:
        return _LineCounter(total, desc, file)
    return tqdm(total=total, desc=desc, unit="task", file=file)


def track(values: Iterable, total: Optional[int], desc: str = "tasks", file=None) -> Iterator:
    """Yield ``values`` unchanged while advancing a bar by one per value."""
    progress = bar(total, desc, file)

    def counted(value):
        progress.update(1)
        return value

    try:
        # no loop variable: a value must not stay referenced here once yielded
        yield from map(counted, values)
    finally:
        progress.close()


def as_completed(fs, timeout: Optional[float] = None, progress: bool = False,
                 desc: str = "tasks", file=None):
    """``concurrent.futures.as_completed`` with an optional progress bar."""
    fs = list(fs) if progress else fs
    done = concurrent.futures.as_completed(fs, timeout=timeout)
    if not progress:
        return done
    return track(done, len(fs), desc, file)
