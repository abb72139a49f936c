"""Compile a Python standard library (or any package tree) into a zip of .pyc.

Run by the *target* interpreter version (``python3.11 stdlib_zip.py ...``) so
the bytecode magic matches the libpython that will load it; it imports only
the standard library for that reason. Only bytecode goes in (no sources), and
code objects carry zip-relative file names, never a path of the build machine.

    python3.11 stdlib_zip.py SRC_DIR OUT_ZIP --prefix stdlib [--include NAME ...]
"""

from __future__ import annotations

import argparse
import importlib._bootstrap_external as bootstrap_external
import os
import sys
import zipfile

# Not needed by a headless volunteer worker, or needing extension modules the
# runtime does not ship (Tk, curses, sqlite, ssl's friends).
EXCLUDED_TOP_LEVEL = frozenset({
    "test", "idlelib", "tkinter", "turtledemo", "turtle.py", "ensurepip", "lib2to3",
    "pydoc_data", "venv", "distutils", "curses", "sqlite3", "dbm", "config-3.11-x86_64-linux-gnu",
    "lib-dynload", "site-packages", "dist-packages", "sitecustomize.py", "__pycache__",
    "EXTERNALLY-MANAGED", "LICENSE.txt", "antigravity.py", "this.py", "__hello__.py",
    "__phello__", "_distutils_system_mod.py",
})
EXCLUDED_ANYWHERE = frozenset({"__pycache__", "test", "tests", "idle_test"})


def iter_sources(src_dir: str, include: list[str] | None):
    """Yield (absolute path, zip-relative path) of every .py to compile."""
    for top in sorted(os.listdir(src_dir)):
        if include is not None and top not in include:
            continue
        if include is None and top in EXCLUDED_TOP_LEVEL:
            continue
        path = os.path.join(src_dir, top)
        if os.path.isfile(path):
            if top.endswith(".py"):
                yield path, top
            continue
        for root, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if d not in EXCLUDED_ANYWHERE)
            for name in sorted(files):
                if name.endswith(".py"):
                    full = os.path.join(root, name)
                    yield full, os.path.relpath(full, src_dir)


def build_zip(src_dir: str, out_zip: str, prefix: str, include: list[str] | None) -> int:
    count = 0
    tmp = out_zip + ".part"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for full, rel in iter_sources(src_dir, include):
            with open(full, "rb") as f:
                source = f.read()
            shown_name = f"{prefix}/{rel}" if prefix else rel
            code = compile(source, shown_name, "exec", dont_inherit=True, optimize=0)
            pyc = bootstrap_external._code_to_timestamp_pyc(code, 0, len(source))
            info = zipfile.ZipInfo(rel[:-3].replace(os.sep, "/") + ".pyc", (1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, bytes(pyc))
            count += 1
    os.replace(tmp, out_zip)
    return count


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src_dir")
    parser.add_argument("out_zip")
    parser.add_argument("--prefix", default="")
    parser.add_argument("--include", action="append", help="only these top-level names")
    args = parser.parse_args(argv)
    count = build_zip(args.src_dir, args.out_zip, args.prefix, args.include)
    print(f"{count} modules", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
