"""A BOINC client data directory with one task and no server, for Debian's real client.

    <dir>/client_state.xml            project, app, app version, workunit, result
                                      (state 2: files downloaded), as if a
                                      scheduler had sent them
    <dir>/account_<project>.xml       the project's account file
    <dir>/cc_config.xml               unsigned_apps_ok (nothing here is signed),
                                      no benchmarks, no GPUs
    <dir>/projects/<project>/...      the app version's and workunit's files

``boinc --dir <dir> --exit_after_finish --no_info_fetch`` then runs the task
and exits; the result's state and exit status are read back from the
client_state.xml it rewrites.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

MASTER_URL = "http://pymw.invalid/test/"
PROJECT_DIR = "pymw.invalid_test"  # BOINC's escaping of MASTER_URL
APP = "pymw"
PLATFORM = "x86_64-pc-linux-gnu"
VERSION = 100

# client/result.h
RESULT_FILES_UPLOADING = 4
RESULT_FILES_UPLOADED = 5


@dataclass
class AppFile:
    physical: str
    source: Path
    open_name: str | None = None
    main_program: bool = False


def _file_info(name: str, *, executable=False, output=False) -> str:
    if output:
        return (f"<file_info><name>{escape(name)}</name><generated_locally/>"
                "<max_nbytes>10000000</max_nbytes>"
                "<upload_url>http://pymw.invalid/upload_handler</upload_url></file_info>\n")
    return (f"<file_info><name>{escape(name)}</name><status>1</status>"
            f"{'<executable/>' if executable else ''}</file_info>\n")


def _file_ref(name: str, open_name: str | None, main_program=False) -> str:
    parts = [f"<file_name>{escape(name)}</file_name>"]
    if open_name:
        parts.append(f"<open_name>{escape(open_name)}</open_name>")
    if main_program:
        parts.append("<main_program/>")
    return f"<file_ref>{''.join(parts)}</file_ref>\n"


def write_client_dir(root: Path, app_files: list[AppFile], inputs: dict, outputs: dict,
                     wu_name: str = "pymw_wu_1", command_line: str = "") -> Path:
    """`inputs`: open name -> (physical, source); `outputs`: open name -> physical."""
    project = root / "projects" / PROJECT_DIR
    project.mkdir(parents=True)
    for f in app_files:
        shutil.copy2(f.source, project / f.physical)
        if f.main_program:
            (project / f.physical).chmod(0o755)
    for physical, source in inputs.values():
        shutil.copy2(source, project / physical)

    state = ["<client_state>\n",
             f"<project><master_url>{MASTER_URL}</master_url>"
             "<project_name>boinc-pymw test</project_name><dont_request_more_work/></project>\n",
             f"<app><name>{APP}</name><user_friendly_name>{APP}</user_friendly_name></app>\n"]
    state += [_file_info(f.physical, executable=f.main_program) for f in app_files]
    state += [_file_info(physical) for physical, _ in inputs.values()]
    state += [_file_info(physical, output=True) for physical in outputs.values()]
    state.append(f"<app_version><app_name>{APP}</app_name><version_num>{VERSION}</version_num>"
                 f"<platform>{PLATFORM}</platform><api_version>7.20.5</api_version>\n")
    state += [_file_ref(f.physical, f.open_name, f.main_program) for f in app_files]
    state.append("</app_version>\n")
    state.append(f"<workunit><name>{wu_name}</name><app_name>{APP}</app_name>"
                 f"<version_num>{VERSION}</version_num>"
                 f"<command_line>{escape(command_line)}</command_line>"
                 "<rsc_fpops_est>1e9</rsc_fpops_est><rsc_fpops_bound>1e14</rsc_fpops_bound>"
                 "<rsc_memory_bound>1e9</rsc_memory_bound><rsc_disk_bound>1e9</rsc_disk_bound>\n")
    state += [_file_ref(physical, open_name) for open_name, (physical, _) in inputs.items()]
    state.append("</workunit>\n")
    state.append(f"<result><name>{wu_name}_0</name><wu_name>{wu_name}</wu_name>"
                 f"<version_num>{VERSION}</version_num><platform>{PLATFORM}</platform>"
                 f"<state>2</state><report_deadline>{time.time() + 7 * 86400:.0f}</report_deadline>\n")
    state += [_file_ref(physical, open_name) for open_name, physical in outputs.items()]
    state.append("</result>\n<user_network_request>3</user_network_request>\n</client_state>\n")
    (root / "client_state.xml").write_text("".join(state))
    (root / f"account_{PROJECT_DIR}.xml").write_text(
        f"<account><master_url>{MASTER_URL}</master_url>"
        "<authenticator>pymw_test_authenticator</authenticator></account>\n")
    write_global_prefs_override(root)
    (root / "cc_config.xml").write_text(
        "<cc_config><options><unsigned_apps_ok>1</unsigned_apps_ok>"
        "<skip_cpu_benchmarks>1</skip_cpu_benchmarks><no_gpus>1</no_gpus>"
        "</options></cc_config>\n")
    return project


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def client_command(root: Path, gui_rpc_port: int | None = None) -> list[str]:
    return [shutil.which("boinc") or "/usr/bin/boinc", "--dir", str(root), "--exit_after_finish",
            "--no_info_fetch", "--gui_rpc_port", str(gui_rpc_port or free_port())]


def boinccmd(root: Path, gui_rpc_port: int, *args: str) -> subprocess.CompletedProcess:
    """Talk to the running client over GUI RPC, as the BOINC Manager would."""
    password = (root / "gui_rpc_auth.cfg").read_text().strip()
    return subprocess.run([shutil.which("boinccmd") or "/usr/bin/boinccmd", "--host",
                           f"127.0.0.1:{gui_rpc_port}", "--passwd", password, *args],
                          capture_output=True, text=True, timeout=30)


def result_record(root: Path, result_name: str) -> dict:
    """state / exit_status / final_cpu_time ... of a result in the client's saved state."""
    tree = ET.parse(root / "client_state.xml")
    for result in tree.getroot().iter("result"):
        if result.findtext("name") == result_name:
            return {child.tag: (child.text or "").strip() for child in result}
    raise KeyError(result_name)


def write_global_prefs_override(root: Path, checkpoint_seconds: float = 60) -> None:
    """Volunteer preferences: "checkpoint at most every N seconds" (init_data's
    checkpoint_period), and never suspend because other processes keep the CPU busy."""
    (root / "global_prefs_override.xml").write_text(
        f"<global_preferences><disk_interval>{checkpoint_seconds}</disk_interval>"
        "<suspend_cpu_usage>0</suspend_cpu_usage><run_if_user_active>1</run_if_user_active>"
        "</global_preferences>\n")


def processes_in(directory: Path) -> list[int]:
    """Pids of processes whose working directory is `directory` (the app in a slot)."""
    target = directory.resolve()
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if Path(os.readlink(entry / "cwd")) == target:
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids
