"""The pure-Python ``boinc`` module (the Windows runtime's), run on Linux as a real app process.

The test plays the client: it writes init_data.xml and the 8 KiB
``boinc_mmap_file`` with BOINC's channel layout, sends process-control
messages and reads the app's status messages.
"""

from __future__ import annotations

import json
import mmap
import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from boinc_pymw.interpreter_build import launcher_build

MODULE = os.path.join(os.path.dirname(launcher_build.__file__), "boinc_standalone.py")
CHANNELS = ("process_control_request", "process_control_reply", "graphics_request",
            "graphics_reply", "heartbeat", "app_status", "trickle_up", "trickle_down")
C_MODULE_INIT_DATA_KEYS = {
    "app_files", "major_version", "minor_version", "release", "app_version", "app_name",
    "project_preferences", "userid", "teamid", "hostid", "user_name", "team_name", "project_dir",
    "boinc_dir", "wu_name", "result_name", "slot", "client_pid", "starting_elapsed_time",
    "rsc_fpops_est", "rsc_fpops_bound", "rsc_memory_bound", "rsc_disk_bound", "computation_deadline",
    "fraction_done_start", "fraction_done_end", "gpu_type", "gpu_device_num", "ncpus",
    "checkpoint_period", "wu_cpu_time"}


@pytest.fixture
def slot(tmp_path):
    directory = tmp_path / "slot ü"
    (directory / "lib").mkdir(parents=True)
    shutil.copy(MODULE, directory / "lib" / "boinc.py")
    return directory


def start_app(slot, body: str) -> subprocess.Popen:
    script = "import sys, json\nsys.path.insert(0, 'lib')\nimport boinc\n" + textwrap.dedent(body)
    (slot / "app.py").write_text(script, encoding="utf-8")
    return subprocess.Popen([sys.executable, "app.py"], cwd=slot, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def run_app(slot, body: str) -> subprocess.CompletedProcess:
    proc = start_app(slot, body)
    out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def write_init_data(directory, /, **fields):
    body = "".join(f"<{k}>{v}</{k}>\n" for k, v in fields.items())
    (directory / "init_data.xml").write_text(f"<app_init_data>\n{body}</app_init_data>\n")


class Client:
    """The client's side of the shared-memory channels."""

    def __init__(self, slot):
        (slot / "boinc_mmap_file").write_bytes(bytes(1024 * len(CHANNELS)))
        self.file = open(slot / "boinc_mmap_file", "r+b")
        self.memory = mmap.mmap(self.file.fileno(), 1024 * len(CHANNELS))

    def send(self, channel, text):
        at = CHANNELS.index(channel) * 1024
        deadline = time.monotonic() + 10
        while self.memory[at] and time.monotonic() < deadline:
            time.sleep(0.02)  # the app has not taken the previous message yet
        data = text.encode() + b"\0"
        self.memory[at + 1:at + 1 + len(data)] = data
        self.memory[at] = 1

    def next_status(self, timeout=10.0) -> dict:
        """The next app_status message, as {tag: float}."""
        at = CHANNELS.index("app_status") * 1024
        deadline = time.monotonic() + timeout
        while not self.memory[at]:
            if time.monotonic() > deadline:
                raise AssertionError("no status message from the app")
            time.sleep(0.02)
        text = self.memory[at + 1:at + 1024].split(b"\0", 1)[0].decode()
        self.memory[at] = 0
        return {k: float(v) for k, v in re.findall(r"<(\w+)>([^<]*)</\1>", text)}

    def fresh_status(self) -> dict:
        self.next_status()  # may predate the last request
        return self.next_status()

    def close(self):
        self.memory.close()
        self.file.close()


@pytest.fixture
def client(slot):
    c = Client(slot)
    yield c
    c.close()


def test_standalone_resolves_links_and_finish_writes_the_finished_file(slot):
    (slot / "input.json").write_text("<soft_link>../../projects/p/wu_1_in</soft_link>\n")
    (slot / "plain.txt").write_text("not a link")
    done = run_app(slot, """
        import atexit
        atexit.register(lambda: print("atexit ran", flush=True))
        boinc.init()
        data = boinc.init_data()
        print(json.dumps([boinc.is_standalone(), sorted(data), data["wu_name"], data["slot"],
                          boinc.resolve_filename("input.json"), boinc.resolve_filename("plain.txt"),
                          boinc.resolve_filename("not_there.json")]))
        print("unflushed at exit", end="")
        boinc.finish(3)
        print("finish returned")
    """)
    assert done.returncode == 3, done.stderr
    lines = done.stdout.splitlines()
    assert json_line(lines[0]) == [True, sorted(C_MODULE_INIT_DATA_KEYS), "", 0,
                                   "../../projects/p/wu_1_in", "plain.txt", "not_there.json"]
    assert lines[1:] == ["unflushed at exitatexit ran"]
    assert (slot / "boinc_finish_called").read_text() == "3\n"


def test_init_data_is_parsed_with_the_c_modules_types(slot):
    (slot / "init_data.xml").write_text(textwrap.dedent("""\
        <app_init_data>
        <major_version>7</major_version><minor_version>20</minor_version><release>5</release>
        <app_name>pymw_app</app_name>
        <project_preferences><color>red</color><n>3</n></project_preferences>
        <wu_name>wu_ü_1</wu_name><result_name>wu_ü_1_0</result_name>
        <slot>3</slot><client_pid>1234</client_pid><shm_key>-1</shm_key>
        <checkpoint_period>61.500000</checkpoint_period><wu_cpu_time>12.250000</wu_cpu_time>
        <ncpus>2.000000</ncpus>
        <app_file>launcher_1.0</app_file>
        <app_file>runtime.zip</app_file>
        <host_info><p_ncpus>2</p_ncpus></host_info>
        </app_init_data>
        """), encoding="utf-8")
    done = run_app(slot, """
        boinc.init()
        print(json.dumps([boinc.is_standalone(), boinc.init_data()]))
    """)
    assert done.returncode == 0, done.stderr
    standalone, data = json_line(done.stdout)
    assert standalone is False
    assert set(data) == C_MODULE_INIT_DATA_KEYS
    assert (data["major_version"], data["minor_version"], data["release"]) == (7, 20, 5)
    assert (data["wu_name"], data["result_name"], data["slot"], data["client_pid"]) == ("wu_ü_1", "wu_ü_1_0", 3, 1234)
    assert (data["checkpoint_period"], data["wu_cpu_time"], data["ncpus"]) == (61.5, 12.25, 2.0)
    assert data["project_preferences"] == "<color>red</color><n>3</n>"
    assert data["app_files"] == ["launcher_1.0", "runtime.zip"]


def test_init_data_with_a_dtd_is_refused(slot):
    (slot / "init_data.xml").write_text(
        '<!DOCTYPE x [<!ENTITY a "aaaa">]><app_init_data><wu_name>&a;</wu_name></app_init_data>')
    done = run_app(slot, "boinc.init()\n")
    assert done.returncode != 0 and "DTDs and entities are not allowed" in done.stderr


def test_api_needs_init_and_checks_fraction(slot):
    done = run_app(slot, """
        errors = []
        for call in (lambda: boinc.fraction_done(0.5), boinc.time_to_checkpoint, boinc.init_data):
            try:
                call()
            except RuntimeError as exc:
                errors.append(str(exc))
        boinc.init()
        for bad in (-0.1, 1.5, float("nan")):
            try:
                boinc.fraction_done(bad)
            except ValueError as exc:
                errors.append("ValueError")
        boinc.fraction_done(1)
        print(json.dumps(errors))
    """)
    assert done.returncode == 0, done.stderr
    errors = json_line(done.stdout)
    assert errors[:3] == ["boinc.fraction_done() needs boinc.init() first",
                          "boinc.time_to_checkpoint() needs boinc.init() first",
                          "boinc.init_data() needs boinc.init() first"]
    assert errors[3:] == ["ValueError"] * 3


def test_time_to_checkpoint_follows_the_checkpoint_period(slot):
    write_init_data(slot, checkpoint_period="0.300000")
    done = run_app(slot, """
        import time
        boinc.init()
        seen = [boinc.time_to_checkpoint()]
        time.sleep(0.4)
        seen.append(boinc.time_to_checkpoint())
        boinc.checkpoint_completed()
        seen.append(boinc.time_to_checkpoint())
        print(json.dumps(seen))
    """)
    assert done.returncode == 0, done.stderr
    assert json_line(done.stdout) == [False, True, False]


COUNTING_APP = """
    boinc.init()
    print("started", flush=True)
    count = 0
    while True:
        count += 1
        boinc.fraction_done(min(count / 1e9, 1.0))
"""


def test_client_sees_progress_and_cpu_time(slot, client):
    write_init_data(slot, client_pid=os.getpid(), wu_cpu_time="100.000000")
    app = start_app(slot, COUNTING_APP)
    try:
        first = client.next_status()
        later = client.fresh_status()
        assert 0 <= first["fraction_done"] < later["fraction_done"] < 1
        assert later["current_cpu_time"] > 100.0  # carries the earlier episodes' CPU time
        assert later["checkpoint_cpu_time"] == 100.0
    finally:
        app.kill()
        app.wait()


def test_suspend_pauses_the_task_and_resume_continues_it(slot, client):
    write_init_data(slot, client_pid=os.getpid())
    app = start_app(slot, COUNTING_APP)
    try:
        client.next_status()
        client.send("process_control_request", "<suspend/>")
        paused = client.fresh_status()["fraction_done"]
        assert client.fresh_status()["fraction_done"] == paused  # no progress while suspended
        client.send("process_control_request", "<resume/>")
        assert client.fresh_status()["fraction_done"] > paused
    finally:
        app.kill()
        app.wait()


@pytest.mark.parametrize("request_text, status", [("<quit/>", 0), ("<abort/>", 194)])
def test_quit_and_abort_end_the_task_without_finishing_it(slot, client, request_text, status):
    write_init_data(slot, client_pid=os.getpid())
    app = start_app(slot, COUNTING_APP)
    client.next_status()
    client.send("process_control_request", request_text)
    assert app.wait(timeout=30) == status
    assert not (slot / "boinc_finish_called").exists()


def test_quit_waits_for_the_critical_section(slot, client):
    write_init_data(slot, client_pid=os.getpid(), checkpoint_period="0.000001")
    app = start_app(slot, """
        import time
        boinc.init()
        assert boinc.time_to_checkpoint()
        print("in critical section", flush=True)
        time.sleep(2.5)
        with open("checkpoint_written", "w") as f:
            f.write("yes")
        boinc.checkpoint_completed()
        while True:
            time.sleep(0.05)
    """)
    assert app.stdout.readline().strip() == "in critical section"
    client.send("process_control_request", "<quit/>")
    assert app.wait(timeout=30) == 0
    assert (slot / "checkpoint_written").read_text() == "yes"


def test_finish_sends_a_last_status_under_the_client(slot, client):
    write_init_data(slot, client_pid=os.getpid())
    done = run_app(slot, """
        boinc.init()
        boinc.fraction_done(1.0)
        boinc.finish(0)
    """)
    assert done.returncode == 0, done.stderr
    assert client.next_status(timeout=1)["fraction_done"] == 1.0
    assert (slot / "boinc_finish_called").read_text() == "0\n"


def json_line(text: str):
    """The JSON document on the first line of ``text``."""
    return json.loads(text.splitlines()[0])


@pytest.mark.skipif(shutil.which("boinc") is None, reason="Debian's boinc-client is not installed (scripts/setup.sh)")
def test_real_client_suspends_and_resumes_the_task(slot):
    """Debian's BOINC client (``--run_test_app``) suspends and resumes the app every few 0.1 s.

    The app's busy loop sees those pauses as gaps between iterations (about a
    third of its 4 s); an app that ignored <suspend/> would see next to none.
    """
    app = slot / "test_app"
    app.write_text(textwrap.dedent("""\
        #!%s
        import json, sys, time
        sys.path.insert(0, "lib")
        import boinc
        boinc.init()
        start = last = time.monotonic()
        gaps = []
        while time.monotonic() - start < 4:
            now = time.monotonic()
            if now - last > 0.05:
                gaps.append(now - last)
            last = now
            boinc.fraction_done(min((now - start) / 4, 1.0))
        with open("seen.json", "w") as f:
            json.dump({"standalone": boinc.is_standalone(), "gaps": gaps}, f)
        boinc.finish(0)
        """ % sys.executable))
    app.chmod(0o755)

    with socket.socket() as probe:  # a GUI RPC port of its own: other clients may be running
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    done = subprocess.run([shutil.which("boinc"), "--run_test_app", "--dir", str(slot), "--gui_rpc_port", str(port)],
                          cwd=slot, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)

    assert "test app finished" in done.stdout, done.stdout
    seen = json.loads((slot / "seen.json").read_text())
    assert seen["standalone"] is False, done.stdout
    paused = sum(seen["gaps"])
    # Seen here: 1.3-2.0 s paused with suspension, at most 0.4 s without it on a loaded machine.
    assert paused > 0.9, f"paused only {paused:.2f} s in {len(seen['gaps'])} gaps"
    assert (slot / "boinc_finish_called").read_text() == "0\n"
