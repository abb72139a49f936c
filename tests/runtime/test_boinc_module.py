"""The built-in `boinc` module, standalone and with an init_data.xml (the real
client is in test_real_client.py)."""

from __future__ import annotations

import json
import signal
import subprocess
import textwrap
from pathlib import Path

from .slot_layout import init_data_xml


def _python(runtime, code: str, cwd: Path, timeout=60) -> subprocess.CompletedProcess:
    return subprocess.run([str(runtime.interpreter), "-c", textwrap.dedent(code)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def test_standalone_without_init_data(tmp_path, linux_runtime):
    proc = _python(linux_runtime, """
        import boinc, json
        errors = []
        for call in (boinc.is_standalone, boinc.init_data, boinc.time_to_checkpoint):
            try:
                call()
            except RuntimeError as exc:
                errors.append(str(exc))
        boinc.init()
        boinc.init()  # idempotent
        boinc.fraction_done(0.5)
        try:
            boinc.fraction_done(1.5)
        except ValueError as exc:
            errors.append(str(exc))
        print(json.dumps({"errors": errors, "standalone": boinc.is_standalone(),
                          "plain": boinc.resolve_filename("some_file"),
                          "wu": boinc.init_data()["wu_name"]}))
    """, tmp_path)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    assert seen["errors"][:3] == ["boinc.is_standalone() needs boinc.init() first",
                                  "boinc.init_data() needs boinc.init() first",
                                  "boinc.time_to_checkpoint() needs boinc.init() first"]
    assert "within [0, 1]" in seen["errors"][3]
    assert seen["standalone"] is True and seen["plain"] == "some_file" and seen["wu"] == ""
    assert "standalone mode" in proc.stderr  # BOINC's own notice, on our stderr
    assert (tmp_path / "boinc_lockfile").exists()


def test_resolve_filename_follows_soft_links(tmp_path, linux_runtime):
    (tmp_path / "in.json").write_text("<soft_link>../../projects/p/phys_in</soft_link>\n")
    proc = _python(linux_runtime, """
        import boinc
        print(boinc.resolve_filename("in.json"))
    """, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "../../projects/p/phys_in"


def test_init_data_and_checkpoint_period(tmp_path, linux_runtime):
    (tmp_path / "init_data.xml").write_text(
        init_data_xml("wu_é", "wu_é_0", tmp_path, checkpoint_period=1))
    proc = _python(linux_runtime, """
        import boinc, json, time
        boinc.init()
        data = boinc.init_data()
        first = boinc.time_to_checkpoint()
        deadline = time.monotonic() + 30
        while not boinc.time_to_checkpoint() and time.monotonic() < deadline:
            time.sleep(0.05)
        boinc.checkpoint_completed()
        again = boinc.time_to_checkpoint()
        print(json.dumps({"wu": data["wu_name"], "result": data["result_name"],
                          "period": data["checkpoint_period"], "first": first,
                          "waited": time.monotonic() < deadline, "again": again,
                          "authenticator": "authenticator" in data}))
    """, tmp_path)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    assert seen == {"wu": "wu_é", "result": "wu_é_0", "period": 1.0, "first": False,
                    "waited": True, "again": False, "authenticator": False}
    assert "standalone mode" in (tmp_path / "stderr.txt").read_text()  # redirected under init_data


def test_finish_runs_atexit_flushes_and_writes_finish_file(tmp_path, linux_runtime):
    proc = _python(linux_runtime, """
        import atexit, boinc, sys
        atexit.register(lambda: open("atexit_ran", "w").write("yes"))
        boinc.init()
        sys.stdout.write("buffered, not yet flushed")
        boinc.finish(3)
        print("not reached")
    """, tmp_path)
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout == "buffered, not yet flushed"
    assert (tmp_path / "atexit_ran").read_text() == "yes"
    assert (tmp_path / "boinc_finish_called").read_text().split()[0] == "3"


def test_python_signal_handling_survives_init(tmp_path, linux_runtime):
    proc = _python(linux_runtime, """
        import boinc, json, os, signal, time
        got = []
        signal.signal(signal.SIGUSR1, lambda *_: got.append("usr1"))
        boinc.init()
        os.kill(os.getpid(), signal.SIGUSR1)
        start = time.monotonic()
        time.sleep(0.5)  # BOINC's 10 Hz SIGALRM must not cut sleeps short
        slept = time.monotonic() - start
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
            interrupted = False
        except KeyboardInterrupt:
            interrupted = True
        r, w = os.pipe()
        os.close(r)
        try:
            os.write(w, b"x")
            pipe = "no error"
        except BrokenPipeError:
            pipe = "BrokenPipeError"  # SIGPIPE still ignored, as Python sets it up
        print(json.dumps({"usr1": got, "slept": slept >= 0.5, "interrupted": interrupted,
                          "pipe": pipe,
                          "sigint": signal.getsignal(signal.SIGINT) is signal.default_int_handler}))
    """, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"usr1": ["usr1"], "slept": True, "interrupted": True,
                                       "pipe": "BrokenPipeError", "sigint": True}


def test_boinc_keeps_sigalrm_after_init(tmp_path, linux_runtime):
    """SIGALRM is the BOINC runtime's (its 10 Hz timer); the README says so."""
    proc = _python(linux_runtime, """
        import boinc, signal
        before = signal.getitimer(signal.ITIMER_REAL)
        boinc.init()
        after = signal.getitimer(signal.ITIMER_REAL)
        print(before[1], after[1])
    """, tmp_path)
    assert proc.returncode == 0, proc.stderr
    before, after = (float(x) for x in proc.stdout.split())
    assert before == 0.0 and abs(after - 0.1) < 1e-6
