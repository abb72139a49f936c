"""Lay out a BOINC project directory and slot the way the 7.20 client does.

    <root>/projects/<project>/<physical name>      the real files
    <root>/slots/<n>/<logical name>                 "<soft_link>../../projects/<project>/<phys></soft_link>"
    <root>/slots/<n>/init_data.xml                  what boinc_init() parses

No shared memory is created, so the BOINC API runs standalone but reads
init_data.xml (checkpoint period, workunit name).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from xml.sax.saxutils import escape

PROJECT = "pymw.invalid_test"


def soft_link(physical: str) -> str:
    return f"<soft_link>../../projects/{PROJECT}/{physical}</soft_link>\n"


#: Logical names of app version files (the rest of a slot's files belong to the workunit).
APP_VERSION_NAMES = ("python_runtime.zip", "app_code.zip", "python_packages.zip")
MAIN_PROGRAM = "boinc_pymw_launcher_1.0_x86_64-pc-linux-gnu"


def init_data_xml(wu_name: str, result_name: str, project_dir: Path, checkpoint_period: float,
                  app_files=(MAIN_PROGRAM,)) -> str:
    fields = {
        "major_version": 7, "minor_version": 20, "release": 5, "app_version": 100,
        "app_name": "pymw", "project_dir": str(project_dir), "wu_name": wu_name,
        "result_name": result_name, "slot": 0, "checkpoint_period": checkpoint_period,
        "ncpus": 1, "fraction_done_start": 0, "fraction_done_end": 1,
        "shmem_seg_name": -1,  # the client's mmap()ed boinc_mmap_file, absent here
    }
    body = "".join(f"<{k}>{escape(str(v))}</{k}>\n" for k, v in fields.items())
    body += "".join(f"<app_file>{escape(name)}</app_file>\n" for name in app_files)
    return f"<app_init_data>\n{body}</app_init_data>\n"


def make_slot(root: Path, files: dict, outputs: dict, *, wu_name: str = "wu_1",
              checkpoint_period: float = 1.0, slot: int = 0, app_files=None) -> Path:
    """`files`: logical name -> (physical name, source path); `outputs`: logical -> physical.

    init_data.xml lists the app version's files as a 7.10+ client does: by
    default the main program and the files with APP_VERSION_NAMES.

    Returns the slot directory. The main program is the caller's business.
    """
    project_dir = root / "projects" / PROJECT
    slot_dir = root / "slots" / str(slot)
    project_dir.mkdir(parents=True, exist_ok=True)
    slot_dir.mkdir(parents=True, exist_ok=True)
    for logical, (physical, source) in files.items():
        target = project_dir / physical
        if not target.exists():
            shutil.copy2(source, target)
        (slot_dir / logical).write_text(soft_link(physical))
    for logical, physical in outputs.items():
        (slot_dir / logical).write_text(soft_link(physical))
    if app_files is None:
        app_files = [MAIN_PROGRAM] + [physical for logical, (physical, _) in files.items()
                                      if logical in APP_VERSION_NAMES]
    (slot_dir / "init_data.xml").write_text(
        init_data_xml(wu_name, f"{wu_name}_0", project_dir, checkpoint_period, app_files))
    return slot_dir
