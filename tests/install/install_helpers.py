"""Helpers shared by the install-app tests (importable, unlike conftest)."""

from __future__ import annotations

from pathlib import Path


def make_runtime(path: Path, platform: str = "x86_64-pc-linux-gnu") -> Path:
    """A small runtime in the launcher's format: a shell script stands in for Python."""
    from boinc_pymw.interpreter_build.launcher_build import write_runtime_config

    (path / "bin").mkdir(parents=True)
    script = path / "bin" / "python3"
    script.write_text('#!/bin/sh\necho "runtime ran with: $*"\n')
    script.chmod(0o755)
    (path / "runtime.json").write_text(f'{{"platform": "{platform}", "boinc_api": "7.20.5"}}\n')
    write_runtime_config(path, "bin/python3", ["-m", "boinc_pymw.worker"])
    return path
