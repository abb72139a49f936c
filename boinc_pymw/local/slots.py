"""Run one BOINC job in a BOINC-style slot directory, the way the client does.

This is the client half of the local debug mode: the job meets exactly the
file layout, link files and start-up data it will meet on a volunteer's
machine, so a launcher or app that works here works under BOINC.

Data flow for one job (paths relative to the runner's root)::

    app version files ---+                     projects/<dir>/<physical name>
    workunit inputs  ----+--> staged once -->        ^   (immutable: same name,
                                                    |     same bytes)
    slots/<n>/                                      |
      <open_name>        "<soft_link>../../projects/<dir>/<phys></soft_link>"
                         (or a real copy for <copy_file/> refs)
      init_data.xml      wu/result names, client pid, checkpoint period ...
      boinc_mmap_file    the client<->app message channels (8 x 1 KiB)
      stderr.txt         the app's stderr: becomes result.stderr_out
      boinc_finish_called   written by boinc_finish(); required on exit 0
                |
    main program ../../projects/<dir>/<phys>, cwd = the slot
                |
    after exit: copy_file outputs copied back, every output checked
    (present unless <optional/>, within <max_nbytes>) --> SlotOutcome

:class:`BoincClientRunner` runs the same job under the real client instead
(``boinc --exit_after_finish`` on a hand-written client state); use
:func:`make_runner` to pick one.

The rules follow the 7.20 client (client/app_start.cpp, app_control.cpp):
link files are text files, not OS symlinks; an exit status of 0 without
``boinc_finish_called`` is not success; a missing output file is an error.
The app is told our pid as ``client_pid``, so the BOINC API does not give up
on a missing heartbeat. Progress (``<fraction_done>``) is read back from the
app-status channel of the memory-mapped file.
"""

from __future__ import annotations

import dataclasses
import fcntl
import html
import logging
import mmap
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

from ..boinc.md5 import file_md5
from ..errors import BoincPymwError

log = logging.getLogger("boinc_pymw.slots")

#: size of the client's SHARED_MEM: 8 message channels of 1024 bytes
MSG_CHANNEL_SIZE = 1024
_CHANNELS = ("process_control_request", "process_control_reply", "graphics_request",
             "graphics_reply", "heartbeat", "app_status", "trickle_up", "trickle_down")
SHARED_MEM_SIZE = MSG_CHANNEL_SIZE * len(_CHANNELS)

#: how much of stderr.txt the client keeps for result.stderr_out
STDERR_MAX_BYTES = 64 * 1024

INIT_DATA_FILE = "init_data.xml"
MMAPPED_FILE_NAME = "boinc_mmap_file"
FINISH_CALLED_FILE = "boinc_finish_called"
TEMPORARY_EXIT_FILE = "boinc_temporary_exit"
STDERR_FILE = "stderr.txt"
LOCK_FILE = "boinc_lockfile"
CLIENT_LOCK_FILE = "lockfile"         # the client's own, in its data directory

#: BOINC's error numbers (lib/error_numbers.h) the client reports for a job
ERR_RSC_LIMIT_EXCEEDED = -177
ERR_FILE_MISSING = -161
ERR_FILE_TOO_BIG = -141

_SOFT_LINK = re.compile(r"^\s*<soft_link>(.*?)</soft_link>", re.S)


class SlotError(BoincPymwError):
    """The job could not be set up (bad app version, clashing file, ...)."""


@dataclasses.dataclass
class SlotFile:
    """One file reference of a job: app-version file, input or output.

    ``source`` is where the bytes are now (None for outputs, which the job
    creates). ``open_name`` is the logical name the app opens; without one the
    slot entry is named after the physical file, as in the client.
    """

    physical_name: str
    source: Optional[Path] = None
    open_name: Optional[str] = None
    copy_file: bool = False
    optional: bool = False
    max_nbytes: Optional[float] = None

    @property
    def slot_name(self) -> str:
        return self.open_name or self.physical_name


@dataclasses.dataclass
class SlotJob:
    """Everything the client knows about one result when it starts the app."""

    app_name: str
    wu_name: str
    result_name: str
    main_program: str                     # physical name, one of app_files
    app_files: Sequence[SlotFile]
    input_files: Sequence[SlotFile] = ()
    output_files: Sequence[SlotFile] = ()
    command_line: Sequence[str] = ()
    version_num: int = 0
    rsc_fpops_est: float = 3600e9
    rsc_fpops_bound: float = 86400e9
    rsc_memory_bound: float = 5e8
    rsc_disk_bound: float = 1e9
    #: wall-clock seconds before the job is stopped (None: no limit); the
    #: client derives it from rsc_fpops_bound and the host's speed
    time_limit: Optional[float] = None
    checkpoint_period: float = 60.0
    environment: dict = dataclasses.field(default_factory=dict)
    #: the app version's plan class and what the scheduler gave it (init_data.xml's
    #: ncpus, gpu_type, gpu_device_num; boinc/plan_class.py local_host_usage)
    plan_class: str = ""
    avg_ncpus: float = 1.0
    gpu_type: str = ""
    gpu_device_num: int = -1


@dataclasses.dataclass
class SlotOutcome:
    """What the client would report for the result."""

    result_name: str
    exit_status: int                      # BOINC-style: app's status or error number
    success: bool
    message: str                          # why it failed ("" on success)
    stderr: str
    outputs: dict                         # physical name -> Path (present files only)
    elapsed: float
    fraction_done: Optional[float] = None
    signal: Optional[int] = None


def client_stderr_out(outcome: "SlotOutcome", client_version: str = "7.20.5") -> str:
    """``result.stderr_out`` as the client reports it: its message, then stderr.txt."""
    message = f"<message>\n{outcome.message}</message>\n" if outcome.message else ""
    return (f"<core_client_version>{client_version}</core_client_version>\n<![CDATA[\n"
            f"{message}<stderr_txt>\n{outcome.stderr}\n</stderr_txt>\n]]>\n")


def soft_link_text(project_dir_name: str, physical_name: str) -> str:
    return f"<soft_link>../../projects/{project_dir_name}/{physical_name}</soft_link>\n"


def resolve_filename(logical_name: str, directory: Path | str = ".") -> Path:
    """What ``boinc_resolve_filename`` does: follow one link file, if it is one."""
    path = Path(directory) / logical_name
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return path
    match = _SOFT_LINK.match(head.decode("utf-8", "replace"))
    if not match:
        return path
    return Path(directory) / html.unescape(match.group(1).strip())


class SlotRunner:
    """A stand-in for the BOINC client's job control, on one machine.

    ``root`` gets ``projects/<project_dir_name>/`` and ``slots/<n>/``, as in
    a client's data directory. Safe to use from several threads as long as
    each call to :meth:`run` has its own slot number.
    """

    def __init__(self, root: Path | str, project_dir_name: str = "localhost_boinc-pymw",
                 poll_interval: float = 0.05):
        self.root = Path(root).resolve()
        self.project_dir_name = project_dir_name
        self.project_dir = self.root / "projects" / project_dir_name
        self.project_dir.mkdir(parents=True, exist_ok=True)
        (self.root / "slots").mkdir(parents=True, exist_ok=True)
        self.poll_interval = poll_interval
        self._stage_lock = threading.Lock()
        #: how long to wait for a slot still locked by an app of an earlier run
        self.busy_slot_timeout = 60.0

    # -- staging ----------------------------------------------------------------
    def stage(self, ref: SlotFile) -> Path:
        """Put ``ref.source`` into the project directory under its physical name.

        BOINC files are immutable: an existing file with the same name and
        other bytes is an error, never silently replaced.
        """
        if ref.source is None:
            raise SlotError(f"input file {ref.physical_name} has no source")
        if "/" in ref.physical_name or ref.physical_name in ("", ".", ".."):
            raise SlotError(f"bad physical file name {ref.physical_name!r}")
        with self._stage_lock:
            return self._stage(ref)

    def _stage(self, ref: SlotFile) -> Path:
        target = self.project_dir / ref.physical_name
        source = Path(ref.source)
        if not source.is_file():
            raise SlotError(f"file {ref.physical_name}: {source} does not exist")
        if target.exists():
            if target.stat().st_size != source.stat().st_size or \
                    file_md5(target) != file_md5(source):
                raise SlotError(f"file {ref.physical_name} already exists with other "
                                f"contents (BOINC files are immutable)")
            return target
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=self.project_dir)
        os.close(fd)
        shutil.copy2(source, tmp)
        os.replace(tmp, target)
        return target

    # -- the slot -----------------------------------------------------------------
    def slot_dir(self, slot: int) -> Path:
        return self.root / "slots" / str(slot)

    def _wait_until_free(self, slot_dir: Path, lock_name: str = LOCK_FILE) -> None:
        """An app from an earlier run may still hold the slot's lock file (its
        client died, so the BOINC API ends it within ~10 s): wait for it, as
        the client never reuses a locked slot."""
        lock_path = slot_dir / lock_name
        if not lock_path.exists():
            return
        deadline = time.monotonic() + self.busy_slot_timeout
        with open(lock_path, "a") as fh:
            while True:
                try:
                    fcntl.lockf(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    fcntl.lockf(fh, fcntl.LOCK_UN)
                    return
                except OSError:
                    if time.monotonic() > deadline:
                        raise SlotError(f"slot {slot_dir} is still locked by another process "
                                        f"after {self.busy_slot_timeout:g} s") from None
                    time.sleep(0.2)

    def _prepare_slot(self, job: SlotJob, slot: int) -> Path:
        slot_dir = self.slot_dir(slot)
        if slot_dir.exists():
            self._wait_until_free(slot_dir)
            shutil.rmtree(slot_dir)
        slot_dir.mkdir(parents=True)
        for ref in list(job.app_files) + list(job.input_files):
            staged = self.stage(ref)
            self._place(slot_dir, ref, staged)
        for ref in job.output_files:
            stale = self.project_dir / ref.physical_name
            if stale.exists():
                stale.unlink()
            if not ref.copy_file:
                self._write_link(slot_dir, ref)
        self._write_init_data(job, slot, slot_dir)
        with open(slot_dir / MMAPPED_FILE_NAME, "wb") as fh:
            fh.write(b"\0" * SHARED_MEM_SIZE)
        return slot_dir

    def _place(self, slot_dir: Path, ref: SlotFile, staged: Path) -> None:
        if ref.copy_file:
            dest = slot_dir / ref.slot_name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(staged, dest)
        else:
            self._write_link(slot_dir, ref)

    def _write_link(self, slot_dir: Path, ref: SlotFile) -> None:
        dest = slot_dir / ref.slot_name
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(soft_link_text(self.project_dir_name, ref.physical_name))

    def _write_init_data(self, job: SlotJob, slot: int, slot_dir: Path) -> None:
        esc = html.escape
        fields = {
            "major_version": 7, "minor_version": 20, "release": 5,
            "app_version": job.version_num,
            "app_name": esc(job.app_name),
            "project_dir": esc(str(self.project_dir)),
            "boinc_dir": esc(str(self.root)),
            "wu_name": esc(job.wu_name),
            "result_name": esc(job.result_name),
            "shm_key": -1,
            "slot": slot,
            "client_pid": os.getpid(),
            "wu_cpu_time": "0.000000",
            "starting_elapsed_time": "0.000000",
            "checkpoint_period": f"{job.checkpoint_period:f}",
            "fraction_done_start": "0.000000",
            "fraction_done_end": "1.000000",
            "rsc_fpops_est": f"{job.rsc_fpops_est:f}",
            "rsc_fpops_bound": f"{job.rsc_fpops_bound:f}",
            "rsc_memory_bound": f"{job.rsc_memory_bound:f}",
            "rsc_disk_bound": f"{job.rsc_disk_bound:f}",
            "ncpus": f"{job.avg_ncpus:f}",
        }
        if job.gpu_type:
            fields.update(gpu_type=esc(job.gpu_type), gpu_device_num=job.gpu_device_num)
        body = "".join(f"<{k}>{v}</{k}>\n" for k, v in fields.items())
        # as clients since 7.10 do: the worker accepts code only from these files
        body += "".join(f"<app_file>{esc(f.physical_name)}</app_file>\n" for f in job.app_files)
        (slot_dir / INIT_DATA_FILE).write_text(f"<app_init_data>\n{body}</app_init_data>\n")

    # -- running ------------------------------------------------------------------
    def run(self, job: SlotJob, slot: int = 0,
            on_progress: Optional[Callable[[float], None]] = None) -> SlotOutcome:
        """Run ``job`` in slot ``slot`` to the end and report like the client."""
        if job.main_program not in {f.physical_name for f in job.app_files}:
            raise SlotError(f"main program {job.main_program} is not among the app files")
        slot_dir = self._prepare_slot(job, slot)
        main = self.project_dir / job.main_program
        if not os.access(main, os.X_OK):
            raise SlotError(f"main program {job.main_program} is not executable")
        argv = [f"../../projects/{self.project_dir_name}/{job.main_program}",
                *job.command_line]
        env = dict(os.environ)
        env.update(job.environment)
        started = time.monotonic()
        with open(slot_dir / STDERR_FILE, "ab") as err, \
                open(slot_dir / "stdout.txt", "ab") as out:
            proc = subprocess.Popen(argv, executable=str(main), cwd=slot_dir,
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                    env=env, start_new_session=True)
        fraction, timed_out = self._watch(proc, job, slot_dir, started, on_progress)
        elapsed = time.monotonic() - started
        return self._report(job, slot_dir, proc.returncode, timed_out, elapsed, fraction)

    def _watch(self, proc, job, slot_dir, started, on_progress):
        """Wait for the app, heartbeating it and reading its fraction done."""
        fraction = None
        timed_out = False
        with open(slot_dir / MMAPPED_FILE_NAME, "r+b") as fh:
            shm = mmap.mmap(fh.fileno(), SHARED_MEM_SIZE)
            try:
                last_beat = 0.0
                while proc.poll() is None:
                    now = time.monotonic()
                    if now - last_beat >= 1.0:
                        _send_msg(shm, "heartbeat", "<heartbeat/>")
                        last_beat = now
                    status = _get_msg(shm, "app_status")
                    if status:
                        match = re.search(r"<fraction_done>([^<]+)</fraction_done>", status)
                        if match:
                            try:
                                fraction = float(match.group(1))
                            except ValueError:
                                pass
                            else:
                                if on_progress:
                                    on_progress(fraction)
                    if job.time_limit is not None and now - started > job.time_limit:
                        timed_out = True
                        _kill_group(proc)
                        break
                    time.sleep(self.poll_interval)
                proc.wait()
            finally:
                shm.close()
        return fraction, timed_out

    def _report(self, job, slot_dir, returncode, timed_out, elapsed, fraction) -> SlotOutcome:
        stderr = _read_tail(slot_dir / STDERR_FILE, STDERR_MAX_BYTES)
        sig = -returncode if returncode is not None and returncode < 0 else None
        finished = (slot_dir / FINISH_CALLED_FILE).exists()

        def fail(status, message):
            log.info("%s: %s", job.result_name, message)
            return SlotOutcome(job.result_name, status, False, message, stderr,
                               self._present_outputs(job), elapsed, fraction, sig)

        if timed_out:
            return fail(ERR_RSC_LIMIT_EXCEEDED,
                        f"exceeded elapsed time limit {job.time_limit:g} s; stopped")
        if sig is not None:
            name = signal.Signals(sig).name if sig in signal.valid_signals() else str(sig)
            return fail(returncode, f"process got signal {sig} ({name})")
        if (slot_dir / TEMPORARY_EXIT_FILE).exists():
            return fail(returncode or 0, "app asked for a temporary exit (boinc_temporary_exit)")
        if returncode != 0:
            return fail(returncode, f"process exited with code {returncode}")
        if not finished:
            return fail(0, "exited with zero status but no 'finished' file: the app must "
                           "end with boinc_finish() (a BOINC client would restart it)")
        # collect outputs the way the client does before uploading
        for ref in job.output_files:
            if ref.copy_file:
                inside = slot_dir / ref.slot_name
                if inside.exists():
                    shutil.copy2(inside, self.project_dir / ref.physical_name)
        problem = self._output_problem(job)
        if problem:
            return fail(*problem)
        return SlotOutcome(job.result_name, 0, True, "", stderr,
                           self._present_outputs(job), elapsed, fraction, None)

    def _output_problem(self, job):
        """``(error code, message)`` for the first missing or oversized output, as
        the client would report it before uploading; None when all are fine."""
        for ref in job.output_files:
            path = self.project_dir / ref.physical_name
            if not path.exists():
                if ref.optional:
                    continue
                return ERR_FILE_MISSING, f"output file {ref.slot_name} ({ref.physical_name}) absent"
            size = path.stat().st_size
            if ref.max_nbytes and size > ref.max_nbytes:
                return (ERR_FILE_TOO_BIG, f"output file {ref.slot_name} is {size} bytes, "
                                          f"over its max_nbytes {ref.max_nbytes:.0f}")
        return None

    def _present_outputs(self, job) -> dict:
        found = {}
        for ref in job.output_files:
            path = self.project_dir / ref.physical_name
            if path.exists():
                found[ref.physical_name] = path
        return found


def _channel(name: str) -> int:
    return _CHANNELS.index(name) * MSG_CHANNEL_SIZE


def _send_msg(shm: mmap.mmap, channel: str, text: str) -> bool:
    """MSG_CHANNEL::send_msg: only when the previous message was taken."""
    offset = _channel(channel)
    if shm[offset] != 0:
        return False
    data = text.encode()[: MSG_CHANNEL_SIZE - 2] + b"\0"
    shm[offset + 1: offset + 1 + len(data)] = data
    shm[offset] = 1
    return True


def _get_msg(shm: mmap.mmap, channel: str) -> Optional[str]:
    """MSG_CHANNEL::get_msg: take the pending message, if any."""
    offset = _channel(channel)
    if shm[offset] == 0:
        return None
    raw = shm[offset + 1: offset + MSG_CHANNEL_SIZE]
    shm[offset] = 0
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()


def _read_tail(path: Path, limit: int) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - limit))
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return ""


# -- app versions on disk -----------------------------------------------------------
def app_version_files(version_dir: Path | str) -> tuple[str, list[SlotFile]]:
    """Read ``apps/<app>/<X.Y>/<platform>/`` the way update_versions does.

    Returns ``(main program's physical name, files)``. Every file of the
    directory is part of the version except ``version.xml``, ``*.sig`` and
    dotfiles; ``version.xml`` gives logical names, ``<copy_file/>`` and the
    ``<main_program/>``; a directory with one file needs no version.xml.
    """
    from lxml import etree

    version_dir = Path(version_dir)
    if not version_dir.is_dir():
        raise SlotError(f"app version directory {version_dir} does not exist")
    present = sorted(p.name for p in version_dir.iterdir()
                     if p.is_file() and p.name != "version.xml"
                     and not p.name.endswith(".sig") and not p.name.startswith("."))
    listed: dict[str, SlotFile] = {}
    main = None
    version_xml = version_dir / "version.xml"
    if version_xml.exists():
        parser = etree.XMLParser(resolve_entities=False, no_network=True)
        try:
            root = etree.parse(str(version_xml), parser).getroot()
        except etree.XMLSyntaxError as exc:
            raise SlotError(f"{version_xml}: not valid XML: {exc}") from None
        for el in root.findall("file"):
            phys = (el.findtext("physical_name") or "").strip()
            if not phys:
                raise SlotError(f"{version_xml}: a <file> has no <physical_name>")
            if not (version_dir / phys).is_file():
                raise SlotError(f"{version_xml}: listed file {phys} is missing")
            logical = (el.findtext("logical_name") or "").strip() or None
            listed[phys] = SlotFile(phys, version_dir / phys, logical,
                                    copy_file=el.find("copy_file") is not None)
            if el.find("main_program") is not None:
                if main is not None:
                    raise SlotError(f"{version_xml}: more than one <main_program/>")
                main = phys
    files = list(listed.values())
    files += [SlotFile(name, version_dir / name) for name in present if name not in listed]
    if main is None:
        if len(files) != 1:
            raise SlotError(f"{version_dir}: no <main_program/> in version.xml")
        main = files[0].physical_name
    return main, files


# -- the real client ------------------------------------------------------------------
class BoincClientRunner(SlotRunner):
    """Run each job under the real BOINC client (``boinc``), from a hand-written
    client state, instead of our own job control.

    Per job, a client data directory ``<root>/boinc_client/<slot>`` gets
    ``client_state.xml`` (project, app, app version, workunit, result in state
    FILES_DOWNLOADED, files present), ``cc_config.xml`` with
    ``<unsigned_apps_ok/>``, preferences that never suspend the job, and the
    files in ``projects/<dir>/``; then ``boinc --exit_after_finish`` runs it
    with the network off. A job that fails is seen in the state file (result
    state COMPUTE_ERROR); the client is then stopped. Outputs are copied into
    this runner's ``project_dir`` (the upload directory of the local mode).
    """

    client_program = "boinc"
    startup_timeout = 60.0

    def run(self, job: SlotJob, slot: int = 0,
            on_progress: Optional[Callable[[float], None]] = None) -> SlotOutcome:
        if job.main_program not in {f.physical_name for f in job.app_files}:
            raise SlotError(f"main program {job.main_program} is not among the app files")
        home = self.root / "boinc_client" / str(slot)
        if home.exists():
            # a client of an earlier, killed run may still be finishing its job
            self._wait_until_free(home, CLIENT_LOCK_FILE)
            shutil.rmtree(home)
        project = home / "projects" / self.project_dir_name
        project.mkdir(parents=True)
        for ref in list(job.app_files) + list(job.input_files):
            shutil.copy2(self.stage(ref), project / ref.physical_name)
        self._write_client_files(home, job)
        started = time.monotonic()
        with open(home / "client.log", "wb") as log_file:
            proc = subprocess.Popen(
                [self.client_program, "--dir", str(home), "--exit_after_finish",
                 "--no_info_fetch", "--skip_cpu_benchmarks", "--no_gpus",
                 "--allow_multiple_clients", "--gui_rpc_port", str(_free_port())],
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                start_new_session=True)
        timed_out = False
        state = None
        try:
            while proc.poll() is None:
                state = _client_result(home / "client_state.xml", job.result_name)
                if state and state["state"] >= 3:
                    break                       # failed: the client keeps running
                limit = job.time_limit if job.time_limit is not None else None
                if limit is not None and time.monotonic() - started > limit:
                    timed_out = True
                    break
                time.sleep(self.poll_interval)
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    _kill_group(proc)
                    proc.wait()
        elapsed = time.monotonic() - started
        state = _client_result(home / "client_state.xml", job.result_name) or {}
        return self._client_report(job, home, project, state, timed_out, elapsed)

    def _client_report(self, job, home, project, state, timed_out, elapsed) -> SlotOutcome:
        slot_stderr = _read_tail(home / "slots" / "0" / STDERR_FILE, STDERR_MAX_BYTES)
        reported = state.get("stderr_out", "")
        message_match = re.search(r"<message>(.*?)</message>", reported, re.S)
        stderr_match = re.search(r"<stderr_txt>(.*?)</stderr_txt>", reported, re.S)
        stderr = slot_stderr or (stderr_match.group(1).strip() if stderr_match else "")
        for ref in job.output_files:
            produced = project / ref.physical_name
            if produced.exists():
                shutil.copy2(produced, self.project_dir / ref.physical_name)
            elif (self.project_dir / ref.physical_name).exists():
                (self.project_dir / ref.physical_name).unlink()

        def fail(status, message):
            return SlotOutcome(job.result_name, status, False, message, stderr,
                               self._present_outputs(job), elapsed, None, None)

        if timed_out:
            return fail(ERR_RSC_LIMIT_EXCEEDED,
                        f"exceeded elapsed time limit {job.time_limit:g} s; stopped")
        if state.get("state", 0) >= 3 or state.get("exit_status"):
            message = message_match.group(1).strip() if message_match else \
                f"the BOINC client reported result state {state.get('state')}"
            return fail(state.get("exit_status") or -1, message)
        if not (home / "slots" / "0" / FINISH_CALLED_FILE).exists():
            log_text = _read_tail(home / "client.log", 4000)
            return fail(-1, "the BOINC client ended without finishing the job:\n" + log_text)
        problem = self._output_problem(job)
        if problem:
            return fail(*problem)
        return SlotOutcome(job.result_name, 0, True, "", stderr, self._present_outputs(job),
                           elapsed, None, None)

    def _write_client_files(self, home: Path, job: SlotJob) -> None:
        esc = html.escape
        master_url = f"http://localhost/{self.project_dir_name.split('_', 1)[-1]}/"
        (home / "cc_config.xml").write_text(
            "<cc_config><options><unsigned_apps_ok/><skip_cpu_benchmarks/>"
            "</options></cc_config>\n")
        (home / "global_prefs_override.xml").write_text(
            "<global_preferences><run_on_batteries>1</run_on_batteries>"
            "<run_if_user_active>1</run_if_user_active><suspend_cpu_usage>0</suspend_cpu_usage>"
            "<cpu_usage_limit>100</cpu_usage_limit><max_ncpus_pct>100</max_ncpus_pct>"
            "<ram_max_used_busy_pct>90</ram_max_used_busy_pct>"
            "<ram_max_used_idle_pct>90</ram_max_used_idle_pct>"
            "<disk_max_used_pct>100</disk_max_used_pct><disk_min_free_gb>0</disk_min_free_gb>"
            "</global_preferences>\n")
        (home / f"account_{self.project_dir_name}.xml").write_text(
            f"<account><master_url>{esc(master_url)}</master_url>"
            f"<authenticator>local</authenticator></account>\n")

        def file_ref(ref: SlotFile, main: bool = False) -> str:
            return ("<file_ref>" f"<file_name>{esc(ref.physical_name)}</file_name>"
                    + (f"<open_name>{esc(ref.open_name)}</open_name>" if ref.open_name else "")
                    + ("<copy_file/>" if ref.copy_file else "")
                    + ("<main_program/>" if main else "")
                    + ("<optional/>" if ref.optional else "") + "</file_ref>\n")

        infos = []
        for ref in list(job.app_files) + list(job.input_files):
            executable = "<executable/>" if ref.physical_name == job.main_program else ""
            infos.append(f"<file_info><name>{esc(ref.physical_name)}</name><status>1</status>"
                         f"{executable}</file_info>\n")
        for ref in job.output_files:
            infos.append(f"<file_info><name>{esc(ref.physical_name)}</name>"
                         f"<max_nbytes>{ref.max_nbytes or 5e6:.0f}</max_nbytes>"
                         f"<url>{esc(master_url)}file_upload_handler</url></file_info>\n")
        app = esc(job.app_name)
        version = max(1, job.version_num)
        command_line = " ".join(job.command_line)
        state = (
            "<client_state>\n"
            f"<project><master_url>{esc(master_url)}</master_url>"
            f"<project_name>boinc-pymw local</project_name><dont_request_more_work/></project>\n"
            f"<app><name>{app}</name></app>\n" + "".join(infos)
            + f"<app_version><app_name>{app}</app_name><version_num>{version}</version_num>"
            f"<platform>x86_64-pc-linux-gnu</platform><api_version>7.20.5</api_version>"
            + (f"<plan_class>{esc(job.plan_class)}</plan_class>" if job.plan_class else "")
            + f"<avg_ncpus>{job.avg_ncpus:f}</avg_ncpus>\n"
            + "".join(file_ref(r, r.physical_name == job.main_program) for r in job.app_files)
            + "</app_version>\n"
            f"<workunit><name>{esc(job.wu_name)}</name><app_name>{app}</app_name>"
            f"<version_num>{version}</version_num>"
            f"<command_line>{esc(command_line)}</command_line>"
            f"<rsc_fpops_est>{job.rsc_fpops_est:f}</rsc_fpops_est>"
            f"<rsc_fpops_bound>{job.rsc_fpops_bound:f}</rsc_fpops_bound>"
            f"<rsc_memory_bound>{job.rsc_memory_bound:f}</rsc_memory_bound>"
            f"<rsc_disk_bound>{job.rsc_disk_bound:f}</rsc_disk_bound>\n"
            + "".join(file_ref(r) for r in job.input_files) + "</workunit>\n"
            f"<result><name>{esc(job.result_name)}</name><final_cpu_time>0</final_cpu_time>"
            f"<exit_status>0</exit_status><state>2</state>"
            f"<platform>x86_64-pc-linux-gnu</platform><version_num>{version}</version_num>"
            + (f"<plan_class>{esc(job.plan_class)}</plan_class>" if job.plan_class else "")
            + f"<wu_name>{esc(job.wu_name)}</wu_name>"
            f"<report_deadline>{time.time() + 7 * 86400:.0f}</report_deadline>\n"
            + "".join(file_ref(r) for r in job.output_files) + "</result>\n"
            "<user_network_request>3</user_network_request>\n</client_state>\n")
        (home / "client_state.xml").write_text(state)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _client_result(state_file: Path, result_name: str) -> Optional[dict]:
    """state, exit_status and stderr_out of one result in a client_state.xml."""
    try:
        text = state_file.read_text(errors="replace")
    except OSError:
        return None
    for block in re.findall(r"<result>.*?</result>", text, re.S):
        name = re.search(r"<name>(.*?)</name>", block)
        if not name or html.unescape(name.group(1)) != result_name:
            continue
        state = re.search(r"<state>(-?\d+)</state>", block)
        status = re.search(r"<exit_status>(-?\d+)</exit_status>", block)
        stderr = re.search(r"<stderr_out>(.*?)</stderr_out>", block, re.S)
        return {"state": int(state.group(1)) if state else 0,
                "exit_status": int(status.group(1)) if status else 0,
                "stderr_out": stderr.group(1) if stderr else ""}
    return None


def make_runner(root: Path | str, client: str = "auto", **kwargs) -> SlotRunner:
    """``client``: "boinc" (the real client), "builtin" (ours) or "auto" (the
    real one when ``boinc`` is installed)."""
    if client not in ("auto", "boinc", "builtin"):
        raise SlotError(f"client must be auto, boinc or builtin, not {client!r}")
    if client == "boinc" or (client == "auto" and shutil.which(BoincClientRunner.client_program)):
        if not shutil.which(BoincClientRunner.client_program):
            raise SlotError("the BOINC client (boinc) is not installed "
                            "(apt-get install boinc-client)")
        return BoincClientRunner(root, **kwargs)
    return SlotRunner(root, **kwargs)
