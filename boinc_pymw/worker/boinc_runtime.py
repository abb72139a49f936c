"""The ``boinc`` module the worker talks to.

In the portable interpreters ``boinc`` is built in (Linux: libboinc_api;
Windows: a pure-Python implementation). Under an ordinary Python (multicore,
HTCondor, tests) there is none, and :class:`StandaloneBoinc` stands in: it
resolves BOINC soft-link files the same way but has no client to talk to.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

_SOFT_LINK = re.compile(rb"^\s*<soft_link>\s*(.*?)\s*</soft_link>", re.S)


class StandaloneBoinc:
    """What ``boinc`` does when no BOINC client runs the process."""

    real = False

    def init(self) -> None:
        pass

    def finish(self, status: int = 0):
        sys.stdout.flush()
        sys.stderr.flush()
        raise SystemExit(status)

    def fraction_done(self, fraction: float) -> None:
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"fraction done must be within [0, 1], not {fraction!r}")

    def time_to_checkpoint(self) -> bool:
        return False

    def checkpoint_completed(self) -> None:
        pass

    def resolve_filename(self, name: str) -> str:
        try:
            with open(name, "rb") as f:
                head = f.read(4096)
        except OSError:
            return name
        match = _SOFT_LINK.match(head)
        return match.group(1).decode() if match else name

    def init_data(self) -> dict:
        return {}

    def is_standalone(self) -> bool:
        return True


def load_boinc():
    """The real ``boinc`` module if this interpreter has one, else a stand-in."""
    try:
        import boinc  # built into the portable interpreters
    except ImportError:
        return StandaloneBoinc()
    return boinc


def is_real(boinc_module) -> bool:
    return getattr(boinc_module, "real", True) is not False and not isinstance(
        boinc_module, StandaloneBoinc)


def resolve_path(boinc_module, name: str) -> Path:
    """The physical file behind a logical name (or a plain path)."""
    return Path(boinc_module.resolve_filename(str(name)))
