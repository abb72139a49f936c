"""Compile small C++ programs against Debian's BOINC server libraries, once per session.

``build_oracle(name, source)`` compiles ``source`` (a path or the C++ text)
with the flags BOINC's headers need and links libsched, libboinc and
libmariadb dynamically (the .a files in Debian's packages are empty stubs;
libsched needs libmariadb, so it comes last on the link line and is a
direct dependency of the program). The executable is cached per pytest
process under a temporary directory keyed by the source and flags, so any
number of tests can ask for the same oracle and the compiler runs once.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent

CXXFLAGS = ["-O1", "-std=gnu++14", "-w", "-I/usr/include/boinc", "-I/usr/include/boinc/lib",
            "-I/usr/include/mariadb"]
LIBS = ["-lsched", "-lboinc", "-lmariadb"]

_lock = threading.Lock()
_built: dict = {}
_workdir = None


class OracleBuildError(AssertionError):
    """The C++ oracle did not compile; the message carries the compiler output."""


def _dir() -> Path:
    global _workdir
    if _workdir is None:
        _workdir = Path(tempfile.mkdtemp(prefix="boinc_pymw_oracles_"))
        atexit.register(shutil.rmtree, _workdir, True)
    return _workdir


def build_oracle(name: str, source, extra_flags=(), libs=None) -> Path:
    """Path of the compiled program ``name`` built from ``source``.

    ``source``: a path to a .cpp file, or C++ source text. ``extra_flags``
    go before the source; ``libs`` replaces the default library list.
    """
    source_path = Path(source) if not str(source).lstrip().startswith(("#", "//", "/*")) \
        and "\n" not in str(source) else None
    text = source_path.read_text() if source_path else str(source)
    libs = list(LIBS if libs is None else libs)
    key = hashlib.sha256("\0".join([name, text, *extra_flags, *libs]).encode()).hexdigest()[:16]
    with _lock:
        if key in _built:
            return _built[key]
        out_dir = _dir() / f"{name}-{key}"
        out_dir.mkdir(parents=True, exist_ok=True)
        src = out_dir / f"{name}.cpp"
        src.write_text(text)
        exe = out_dir / name
        cmd = ["g++", *CXXFLAGS, *extra_flags, str(src), "-o", str(exe), *libs]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise OracleBuildError(f"compiling oracle {name} failed:\n{' '.join(cmd)}\n"
                                   f"{done.stderr[-4000:]}")
        _built[key] = exe
        return exe


def run_oracle(exe, *args, input: str = None, env: dict = None, check: bool = True) -> str:
    """Run an oracle; its stdout, or AssertionError with stderr if it failed."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    done = subprocess.run([str(exe), *map(str, args)], input=input, capture_output=True,
                          text=True, env=full_env)
    if check and done.returncode != 0:
        raise AssertionError(f"oracle {Path(str(exe)).name} {args[:1]} exited "
                             f"{done.returncode}: {done.stderr[-2000:]}")
    return done.stdout


def boinc_oracle() -> Path:
    """tests/oracle/boinc_oracle.cpp (hier, template, create, DB round trips)."""
    return build_oracle("boinc_oracle", HERE / "boinc_oracle.cpp")


def parse_fields(text: str) -> dict:
    """The oracle's key=value lines (and the <<<XML ... XML>>> block) as a dict."""
    fields, lines = {}, iter(text.splitlines())
    for line in lines:
        if line == "<<<XML":
            fields["xml_doc"] = "\n".join(xml_block(lines))
            continue
        key, sep, value = line.partition("=")
        if sep:
            fields[key] = value
    return fields


def xml_block(lines) -> list:
    """The lines of an oracle's <<<XML ... XML>>> block, taken from the iterator
    ``lines`` just after its ``<<<XML`` line, up to and without ``XML>>>``."""
    body = []
    for inner in lines:
        if inner == "XML>>>":
            break
        body.append(inner)
    return body
