"""Helpers for the launcher tests: a BOINC-style slot, running the launcher in it.

A slot is laid out as BOINC's client lays it: app-version and workunit files
live in ``projects/<project dir>/`` under their physical names, and the slot
holds, under each logical name, a soft-link text file
``<soft_link>../../projects/<project dir>/<physical></soft_link>``. The
data directory's and project directory's names contain a space and non-ASCII
characters on purpose.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess

WINE_APP_DIR = pathlib.Path(__file__).resolve().parent / "wine_app"
PROJECT_DIR_NAME = "example.org_ü proj"

# Prints its working directory and then each argument, hex-encoded, one per
# line (so any byte survives), and exits with $ECHO_EXIT_STATUS.
ECHO_ARGV_SOURCE = r"""
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
static void hex(const char* s) { for (; *s; ++s) printf("%02x", (unsigned char)*s); printf("\n"); }
int main(int argc, char** argv) {
    char cwd[4096];
    hex(getcwd(cwd, sizeof cwd) ? cwd : "?");
    for (int i = 1; i < argc; ++i) hex(argv[i]);
    const char* status = getenv("ECHO_EXIT_STATUS");
    return status ? atoi(status) : 0;
}
"""


def decode_echo(stdout: bytes):
    """(cwd, args) from the echo program's output."""
    lines = stdout.decode().splitlines()
    values = [bytes.fromhex(line).decode("utf-8", "surrogateescape") for line in lines]
    return values[0], values[1:]


class BoincSlot:
    """A BOINC data directory with one project and one slot, as the client lays them out."""

    def __init__(self, root: pathlib.Path):
        self.root = root
        self.project_dir = root / "projects" / PROJECT_DIR_NAME
        self.slot_dir = root / "slots" / "0"
        self.project_dir.mkdir(parents=True)
        self.slot_dir.mkdir(parents=True)
        self.app_files: list[str] = []   # physical names, for init_data.xml's <app_file>

    def link(self, logical: str, physical: str) -> pathlib.Path:
        """Write the slot's soft-link file for ``logical``; return the physical path."""
        (self.slot_dir / logical).write_text(
            f"<soft_link>../../projects/{PROJECT_DIR_NAME}/{physical}</soft_link>\n", encoding="utf-8")
        return self.project_dir / physical

    def add(self, logical: str, physical: str, source) -> pathlib.Path:
        """Put a file in the project directory (bytes or a path to copy) and link it."""
        target = self.project_dir / physical
        if isinstance(source, (bytes, bytearray)):
            target.write_bytes(source)
        else:
            shutil.copy2(source, target)
        return self.link(logical, physical)

    def add_app_file(self, logical: str, physical: str, source) -> pathlib.Path:
        """A file of the app version: like add(), and listed in init_data.xml."""
        self.app_files.append(physical)
        return self.add(logical, physical, source)

    def add_main_program(self, launcher: pathlib.Path, physical: str) -> pathlib.Path:
        self.app_files.append(physical)
        target = self.project_dir / physical
        shutil.copy2(launcher, target)
        target.chmod(0o755)
        return target

    def write_init_data(self, **fields) -> None:
        body = "".join(f"<{k}>{v}</{k}>\n" for k, v in fields.items())
        body += "".join(f"<app_file>{name}</app_file>\n" for name in self.app_files)
        (self.slot_dir / "init_data.xml").write_text(f"<app_init_data>\n{body}</app_init_data>\n",
                                                     encoding="utf-8")


def run_launcher(launcher, slot: BoincSlot, args=(), env=None, runner=()):
    """Start the launcher as BOINC does: by its path relative to the slot, cwd = slot."""
    relative = os.path.relpath(launcher, slot.slot_dir)
    return subprocess.run([*runner, relative, *args], cwd=slot.slot_dir, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, env=env, timeout=300)
