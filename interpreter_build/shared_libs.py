"""Which shared libraries a runtime must carry, found with ``ldd``.

Everything an executable or extension module loads is bundled, except the
core of glibc (and the dynamic loader), which every Linux host has and which
must match the host's kernel interface. libstdc++ and libgcc_s are bundled:
older distributions ship versions too old for Debian 12's builds.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from boinc_pymw.errors import BoincPymwError

# glibc's own libraries: always taken from the host.
HOST_LIBRARIES = frozenset({
    "linux-vdso.so.1", "ld-linux-x86-64.so.2", "libc.so.6", "libm.so.6", "libpthread.so.0",
    "libdl.so.2", "librt.so.1", "libutil.so.1", "libresolv.so.2", "libanl.so.1",
    "libmvec.so.1",
})

_LDD_LINE = re.compile(r"^\s*(\S+)\s+=>\s+(\S+)\s+\(0x[0-9a-f]+\)\s*$")
_GLIBC_VERSION = re.compile(r"GLIBC_(\d+)\.(\d+)")


class MissingLibrary(BoincPymwError):
    """ldd could not find a library the runtime needs on the build machine."""


def needed_libraries(binary: Path) -> dict[str, Path]:
    """Soname -> path on this machine, for every library `binary` loads (transitively)."""
    out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=True).stdout
    found: dict[str, Path] = {}
    for line in out.splitlines():
        if "not found" in line:
            raise MissingLibrary(f"{binary.name}: {line.strip()}")
        match = _LDD_LINE.match(line)
        if match and match.group(1) not in HOST_LIBRARIES:
            found[match.group(1)] = Path(match.group(2))
    return found


def library_closure(binaries: list[Path]) -> dict[str, Path]:
    """The union of :func:`needed_libraries` over several binaries."""
    closure: dict[str, Path] = {}
    for binary in binaries:
        closure.update(needed_libraries(binary))
    return closure


def minimum_glibc(binaries: list[Path]) -> str:
    """The newest GLIBC_x.y symbol version any of `binaries` asks for."""
    newest = (0, 0)
    for binary in binaries:
        out = subprocess.run(["objdump", "-T", str(binary)], capture_output=True, text=True,
                             check=True).stdout
        for major, minor in _GLIBC_VERSION.findall(out):
            newest = max(newest, (int(major), int(minor)))
    return f"{newest[0]}.{newest[1]}"
