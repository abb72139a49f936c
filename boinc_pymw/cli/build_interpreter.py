"""``boinc_pymw build-interpreter``: build the portable runtime volunteers run."""

from __future__ import annotations

import zipfile
from pathlib import Path

from ..errors import BoincPymwError

COMMAND = "build-interpreter"
HELP = "build the portable Python runtime (interpreter + boinc module + worker) for a platform"

PLATFORMS = ("x86_64-pc-linux-gnu", "windows_x86_64")


def add_arguments(parser) -> None:
    parser.add_argument("--platform", required=True, choices=PLATFORMS,
                        help="BOINC platform name of the runtime")
    parser.add_argument("--out", required=True, type=Path,
                        help="directory to write the unpacked runtime to (packed: OUT.zip)")


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB ({n} bytes)"


def run(args) -> int:
    if args.platform == "x86_64-pc-linux-gnu":
        from boinc_pymw.interpreter_build.linux import build_linux_runtime

        build = build_linux_runtime(args.out)
        print(f"runtime {build.platform} in {build.directory}")
        print(f"interpreter: {build.interpreter}")
        print(f"unpacked: {_size(build.unpacked_bytes)}")
        print(f"packed:   {_size(build.packed_bytes)} ({build.archive})")
        return 0
    try:
        from boinc_pymw.interpreter_build.windows import build_windows_runtime
    except ImportError as exc:
        raise BoincPymwError(f"the Windows runtime builder is not available: {exc}") from None
    archive = Path(build_windows_runtime(args.out))
    with zipfile.ZipFile(archive) as zf:
        unpacked = sum(info.file_size for info in zf.infolist())
    print(f"runtime {args.platform} in {args.out}")
    print(f"unpacked: {_size(unpacked)}")
    print(f"packed:   {_size(archive.stat().st_size)} ({archive})")
    return 0
