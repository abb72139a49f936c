"""-i boinc --url: remote submission through BOINC's web RPCs, against a stand-in
of a 1.4.7 project's PHP (rpc_standin.py) on the test database, with faults."""

from __future__ import annotations

import io
import json
import os
import time
import types
import warnings
import zipfile
from pathlib import Path

import pytest

from boinc_pymw import Master
from boinc_pymw.backends.boinc import WorkunitFailed
from boinc_pymw.backends.boinc._app_check import SubmissionRefused
from boinc_pymw.backends.boinc._credentials import (CredentialsError, InsecureTransportWarning,
                                                    find_authenticator)
from boinc_pymw.backends.boinc._rpc import (BoincRpcError, RpcTransportError, SubmitClient,
                                            parse_reply)
from boinc_pymw.backends.boinc.remote import RemoteBoincBackend, RemoteSubmitError
from boinc_pymw.cli import main as cli_main
from boinc_pymw.cli.submitters import grant

from . import tasks
from .rpc_standin import StandIn
from .volunteers import Volunteers

HERE = Path(__file__).parent
APP = "pymwapp"


class FastVolunteers(Volunteers):
    """Volunteers that run the task in this process (the test's own code, trusted)
    instead of a slot; the server side (transitioner, scheduler, validator,
    assimilator, upload directory) is the same. ``crashes`` is reported as a
    crash with stderr instead of being run."""

    def compute(self, wu, result):
        from boinc_pymw.boinc.output_files import safe_xml
        from boinc_pymw.local.simulate import Client
        from boinc_pymw.worker.codec import resolve_reference
        from boinc_pymw.worker.runner import encode_output, run_task

        root = safe_xml(wu["xml_doc"], wrap=True)
        physical = root.find("workunit/file_ref").findtext("file_name")
        with open(self.project.download_path(physical), "rb") as f:
            job = json.load(f)
        client = Client(self.project, result["host_id"])
        if job["function"].endswith(":crashes"):
            client.fail(result, exit_status=-11)
            self.db.execute("UPDATE result SET stderr_out=%s WHERE id=%s",
                            ("<stderr_txt>Fatal Python error: Segmentation fault\n"
                             "</stderr_txt>", result["id"]))
            return
        data = encode_output(run_task(resolve_reference(job["function"]), job))
        client.succeed(result, [data])
        doc = safe_xml(result["xml_doc_in"], wrap=True)
        names = [fi.findtext("name") for fi in doc.iterfind("file_info")]
        self.db.execute("UPDATE result SET xml_doc_out=%s WHERE id=%s",
                        ("".join(f"<file_info>\n    <name>{n}</name>\n    <nbytes>{len(data)}"
                                 f"</nbytes>\n</file_info>\n" for n in names), result["id"]))


def code_zip(modules: dict) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, text in modules.items():
            zf.writestr(name, text)
    return buf.getvalue()


@pytest.fixture
def world(boinc_project, tmp_path):
    from boinc_pymw.boinc.testing import add_app, add_host, add_platform, add_user
    from boinc_pymw.local.simulate import add_app_version
    from boinc_pymw.templates import write_app_templates

    p = boinc_project
    app_id = add_app(p, APP)
    add_app_version(p, app_id, add_platform(p), version_num=100)
    write_app_templates(p, APP, inputs=["input.json"], outputs=["output.json"],
                        min_quorum=1, target_nresults=1, max_error_results=1)
    with open(os.path.join(p.download_dir, f"{APP}_1.0_code.zip"), "wb") as f:
        f.write(code_zip({"backends/__init__.py": "", "backends/boinc/__init__.py": "",
                          "backends/boinc/tasks.py": (HERE / "tasks.py").read_text()}))
    add_user(p, "scientist@example.org")
    auth = p.db.query_one("SELECT authenticator FROM user WHERE email_addr=%s",
                          ("scientist@example.org",))["authenticator"]
    grant(p.db, "scientist@example.org", [APP])
    hosts = [add_host(p, add_user(p, "volunteer@example.org"))]
    standin = StandIn(p, slow_seconds=1.5)
    volunteers = FastVolunteers(p, APP, app_id, hosts, (None, []), tmp_path / "client")
    try:
        yield types.SimpleNamespace(project=p, app_id=app_id, auth=auth, standin=standin,
                                    volunteers=volunteers, url=standin.url)
    finally:
        standin.close()


def master(world, **options):
    defaults = dict(interface="boinc", url=world.url, app=APP, authenticator=world.auth,
                    poll_interval=0.05, max_poll_interval=0.2, timeout=1.0, retries=2,
                    backoff=0.05, submit_delay=0.0)
    defaults.update(options)
    return Master(**defaults)


def drive(world, futures, timeout=60.0):
    """Play the volunteers until every future is done."""
    deadline = time.monotonic() + timeout
    while not all(f.done() for f in futures):
        assert time.monotonic() < deadline, "futures still pending"
        world.volunteers.step()
        time.sleep(0.05)


def wait_for(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def batches(world):
    return world.project.db.query("SELECT id, name, state, njobs FROM batch ORDER BY id")


def workunits(world):
    return world.project.db.query("SELECT id, name, batch, error_mask FROM workunit "
                                  "ORDER BY id")


# -- end to end ----------------------------------------------------------------------------------
def test_map_runs_remotely_and_the_batch_is_retired(world):
    m = master(world)
    futures = [m.submit(tasks.square, x) for x in range(4)]
    drive(world, futures)
    assert [f.result() for f in futures] == [0, 1, 4, 9]
    name = m.backend.batch
    m.shutdown()
    assert isinstance(m.backend, RemoteBoincBackend)
    rows = batches(world)
    assert [r["name"] for r in rows] == [name]
    assert rows[0]["state"] == 4                       # retired
    assert len(workunits(world)) == 4
    assert all(w["name"].startswith(f"{name}_") for w in workunits(world))
    assert world.standin.requests.count("submit_batch") == 1


def test_map_and_a_later_submit_make_two_parts(world):
    m = master(world)
    futures = [m.submit(tasks.add, 1, b=2)]
    wait_for(lambda: len(workunits(world)) == 1)
    futures.append(m.submit(tasks.add, 5))
    drive(world, futures)
    assert [f.result() for f in futures] == [3, 5]
    m.shutdown()
    names = [r["name"] for r in batches(world)]
    assert names == [m.backend.batch, m.backend.batch + "#1"]
    assert all(r["state"] == 4 for r in batches(world))


def test_calls_flushed_together_split_into_parts_and_outputs_are_size_limited(world,
                                                                           monkeypatch):
    import boinc_pymw.backends.boinc.remote as remote

    m = master(world, part_max_jobs=2, submit_delay=0.5)
    futures = [m.submit(tasks.square, x) for x in range(5)]
    drive(world, futures)
    assert [f.result() for f in futures] == [0, 1, 4, 9, 16]
    m.shutdown()
    assert [r["njobs"] for r in batches(world)] == [2, 2, 1]
    assert world.standin.requests.count("query_batch") > 0
    monkeypatch.setattr(remote, "MAX_OUTPUT_BYTES", 5)
    m = master(world)
    big = m.submit(tasks.add, "a" * 10, b="")
    drive(world, [big])
    with pytest.raises(Exception, match="larger than 5 bytes"):
        big.result()
    m.shutdown()
    assert batches(world)[-1]["state"] != 4     # kept: that output was not fetched


def test_task_errors_and_failed_jobs(world):
    world.standin.php_query_completed_job_bug = False    # a release where it works: stderr
    m = master(world)
    ok = m.submit(tasks.square, 3)
    raising = m.submit(tasks.raises, "boom")
    crashing = m.submit(tasks.crashes)
    drive(world, [ok, raising, crashing])
    assert ok.result() == 9
    with pytest.raises(ValueError, match="boom"):
        raising.result()
    with pytest.raises(WorkunitFailed) as info:
        crashing.result()
    assert "exit status -11" in str(info.value)
    assert "Segmentation fault" in str(info.value)
    m.shutdown()


def test_failed_job_without_details_still_fails_clearly(world):
    assert world.standin.php_query_completed_job_bug     # 1.4.7's undefined $job_id
    m = master(world)
    crashing = m.submit(tasks.crashes)
    drive(world, [crashing])
    with pytest.raises(WorkunitFailed, match="too many errors|exit status -11"):
        crashing.result()
    m.shutdown()


def test_big_inputs_are_uploaded_with_job_file_php(world):
    m = master(world, inline_max=200)
    big = "x" * 5000
    futures = [m.submit(tasks.add, big, b="!"), m.submit(tasks.add, 1, b=1)]
    drive(world, futures)
    assert futures[0].result() == big + "!" and futures[1].result() == 2
    assert "query_files" in world.standin.requests and "upload_files" in world.standin.requests
    m.shutdown()


# -- failing fast ----------------------------------------------------------------------------------
def test_refused_before_anything_is_submitted(world):
    from boinc_pymw.boinc.testing import add_app, add_user

    add_user(world.project, "nobody@example.org")
    other = world.project.db.query_one("SELECT authenticator FROM user WHERE email_addr=%s",
                                       ("nobody@example.org",))["authenticator"]
    with pytest.raises(SubmissionRefused, match="submitters add EMAIL"):
        master(world, authenticator=other)
    with pytest.raises(SubmissionRefused, match="no account with this authenticator"):
        master(world, authenticator="0" * 32)
    add_app(world.project, "noversion")
    grant(world.project.db, "nobody@example.org")               # every app
    from boinc_pymw.templates import write_app_templates
    write_app_templates(world.project, "noversion", inputs=["input.json"],
                        outputs=["output.json"])
    with pytest.raises(SubmissionRefused, match="no current app version"):
        master(world, authenticator=other, app="noversion")
    with pytest.raises(SubmissionRefused, match="has no app 'nosuchapp'"):
        master(world, authenticator=other, app="nosuchapp")
    assert "create_batch" not in world.standin.requests
    world.standin.inject("ping", "error")
    with pytest.raises(SubmissionRefused, match="does not take requests now.*injected"):
        master(world)


def not_shipped(x):
    return x


def test_a_function_the_app_does_not_ship_is_refused(world):
    import boinc_pymw.worker.codec as codec

    m = master(world)
    refused = m.submit(codec.encode_task, "a:b")
    with pytest.raises(SubmissionRefused, match="pymwapp.*encode_task is refused"):
        refused.result(timeout=5)
    with pytest.raises(SubmissionRefused, match="not_shipped is refused"):
        m.submit(not_shipped, 1).result(timeout=5)
    accepted = m.submit(tasks.add, 2, b=3)     # shipped, public: accepted
    drive(world, [accepted])
    assert accepted.result() == 5
    m.shutdown()
    assert "submit_batch" in world.standin.requests
    assert not any("encode_task" in w["name"] for w in workunits(world))


# -- faults ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["drop_after", "slow_after"])
def test_a_lost_submit_reply_submits_nothing_twice(world, kind):
    world.standin.inject("submit_batch", kind)
    m = master(world)
    futures = [m.submit(tasks.square, x) for x in range(5)]
    drive(world, futures)
    assert [f.result() for f in futures] == [0, 1, 4, 9, 16]
    m.shutdown()
    assert len(workunits(world)) == 5
    assert len(batches(world)) == 1


def test_a_lost_reply_and_a_lost_master_reattach_finds_the_jobs(world):
    world.standin.inject("submit_batch", "drop_after")
    m1 = master(world, submit_attempts=1, retries=0)
    world.standin.inject("query_batch", "drop_before", times=1)   # the check fails too
    lost = [m1.submit(tasks.square, x) for x in range(3)]
    with pytest.raises(RemoteSubmitError, match="dropped"):
        lost[0].result(timeout=10)
    m1.shutdown()
    assert len(workunits(world)) == 3 and batches(world)[0]["state"] != 4   # kept
    m2 = master(world, batch=m1.backend.batch)
    found = [m2.submit(tasks.square, x) for x in range(3)]
    drive(world, found)
    assert [f.result() for f in found] == [0, 1, 4]
    m2.shutdown()
    assert world.standin.requests.count("submit_batch") == 1
    assert len(workunits(world)) == 3


def test_http_500_before_acting_is_retried(world):
    world.standin.inject("submit_batch", "http500")
    world.standin.inject("query_batch", "http500", times=2)
    m = master(world)
    futures = [m.submit(tasks.square, x) for x in range(3)]
    drive(world, futures)
    assert [f.result() for f in futures] == [0, 1, 4]
    m.shutdown()
    assert len(workunits(world)) == 3
    assert world.standin.requests.count("submit_batch") == 2


def test_a_boinc_error_reply_fails_the_calls_clearly(world):
    world.standin.inject("submit_batch", "error")
    m = master(world)
    future = m.submit(tasks.square, 2)
    with pytest.raises(RemoteSubmitError, match="injected failure"):
        future.result(timeout=10)
    m.shutdown()
    assert workunits(world) == []


def test_a_lost_create_batch_reply_makes_one_batch(world):
    world.standin.inject("create_batch", "drop_after")
    m = master(world)
    future = m.submit(tasks.square, 7)
    drive(world, [future])
    assert future.result() == 49
    m.shutdown()
    assert len(batches(world)) == 1


def test_a_redirected_project_url_is_a_clear_error(world):
    with pytest.raises(RpcTransportError, match="redirects to"):
        SubmitClient(world.url + "old/", world.auth, retries=0).ping()


def test_unreachable_project_is_a_clear_error(world):
    world.standin.close()
    with pytest.raises(RpcTransportError, match="cannot reach|dropped"):
        master(world)


def test_a_project_that_stops_answering_fails_the_futures(world):
    m = master(world, unreachable_timeout=0.5, retries=0)
    future = m.submit(tasks.square, 2)
    wait_for(lambda: len(workunits(world)) == 1)
    world.standin.inject("query_batch", "drop_before", times=1000)
    with pytest.raises(Exception, match="did not answer.*--batch"):
        future.result(timeout=20)
    m.shutdown()
    assert batches(world)[0]["state"] != 4           # kept: not every result was fetched


# -- reattach, cancel ------------------------------------------------------------------------------
def test_reattach_by_name_or_id_submits_nothing_again(world):
    m1 = master(world, keep_batch=True)
    first = [m1.submit(tasks.square, x) for x in range(3)]
    wait_for(lambda: len(workunits(world)) == 3)
    m1.shutdown(wait=False)                  # the laptop goes away; the jobs run on
    name = m1.backend.batch
    submits = world.standin.requests.count("submit_batch")
    for batch in (name, str(batches(world)[0]["id"])):
        m2 = master(world, batch=batch, keep_batch=True)
        again = [m2.submit(tasks.square, x) for x in range(3)]
        drive(world, again + first)
        assert [f.result() for f in again] == [0, 1, 4]
        assert m2.backend.reattached and m2.backend.batch == name
        m2.shutdown()
    assert world.standin.requests.count("submit_batch") == submits
    assert len(workunits(world)) == 3
    m3 = master(world, batch=name, keep_batch=True)
    with pytest.raises(Exception, match="differs from the job"):
        m3.submit(tasks.square, 10)
    m3.shutdown()
    from boinc_pymw.boinc.testing import add_app
    from boinc_pymw.templates import write_app_templates

    other = add_app(world.project, "otherapp")
    from boinc_pymw.local.simulate import add_app_version
    add_app_version(world.project, other, 1)
    write_app_templates(world.project, "otherapp", inputs=["input.json"],
                        outputs=["output.json"])
    grant(world.project.db, "scientist@example.org", ["otherapp"])
    with pytest.raises(SubmissionRefused, match="runs app pymwapp, not otherapp"):
        master(world, batch=name, app="otherapp")


def test_an_output_that_is_not_json_is_a_clear_error(world):
    m1 = master(world, keep_batch=True)
    future = m1.submit(tasks.square, 3)
    drive(world, [future])
    m1.shutdown()
    result = world.project.db.query_one("SELECT xml_doc_out FROM result")["xml_doc_out"]
    if isinstance(result, bytes):
        result = result.decode()
    physical = result.split("<name>")[1].split("</name>")[0]
    with open(world.project.upload_path(physical), "wb") as f:
        f.write(b"\x00\xff garbage from a hostile volunteer")
    m2 = master(world, batch=m1.backend.batch)
    again = m2.submit(tasks.square, 3)
    with pytest.raises(Exception, match="output.json is not valid JSON"):
        again.result(timeout=10)
    m2.shutdown()


def test_cancelling_a_future_aborts_its_job(world):
    m = master(world)
    keep = m.submit(tasks.square, 4)
    drop = m.submit(tasks.square, 5)
    wait_for(lambda: len(workunits(world)) == 2)
    assert drop.cancel()
    wait_for(lambda: "abort_jobs" in world.standin.requests)
    drive(world, [keep])
    assert keep.result() == 16
    m.shutdown()
    masks = {w["name"].split("_")[-2]: w["error_mask"] for w in workunits(world)}
    assert masks["1"] & 16 and not masks["0"] & 16


def test_cancel_batch_aborts_every_part(world):
    m = master(world, part_max_jobs=1, submit_delay=0.3)
    futures = [m.submit(tasks.square, x) for x in range(2)]
    wait_for(lambda: len(workunits(world)) == 2)
    m.backend.cancel_batch()
    assert all(f.cancelled() for f in futures)
    assert [b["state"] for b in batches(world)] == [3, 3]             # aborted
    assert all(w["error_mask"] & 16 for w in workunits(world))
    m.shutdown()
    assert [b["state"] for b in batches(world)] == [4, 4]             # then retired


def test_shutdown_without_waiting_still_aborts_cancelled_jobs(world):
    m = master(world, poll_interval=30.0)
    futures = [m.submit(tasks.square, x) for x in range(2)]
    wait_for(lambda: len(workunits(world)) == 2)
    m.shutdown(wait=False, cancel_futures=True)
    assert all(f.cancelled() for f in futures)
    assert all(w["error_mask"] & 16 for w in workunits(world))


# -- replies as 1.4.7 writes them ------------------------------------------------------------------
def test_replies_with_1_4_7_quirks_parse():
    root = parse_reply("abort_jobs", b'<?xml version="1.0" encoding="ISO-8859-1" ?>\n'
                       b"<abort_jobs>\n<aborted job_1>\n<success>1</success>\n</abort_jobs>\n")
    assert root.findtext("success") == "1"
    noisy = (b"<query_batch>\n<br />\n<b>Warning</b>:  Undefined variable $x in "
             b"<b>/h/submit.php</b> on line <b>3</b><br />\n<id>4</id></query_batch>")
    assert parse_reply("query_batch", noisy).findtext("id") == "4"
    with pytest.raises(BoincRpcError, match="no such batch"):
        parse_reply("query_batch", b"<query_batch>\n<error>\n<error_num>-1</error_num>\n"
                    b"<error_msg>no such batch</error_msg>\n</error>\n</query_batch>")
    job = parse_reply("query_batch", b"<query_batch><job><id>1</id><name>a</name>"
                      b"<error>cancelled</error><status>error</status></job></query_batch>")
    assert job.find("job/error").text == "cancelled"       # a job's error is not a refusal
    with pytest.raises(RpcTransportError, match="not XML"):
        parse_reply("ping", b"<html><body>Fatal error")


# -- credentials -----------------------------------------------------------------------------------
def test_authenticator_sources_and_file_permissions(tmp_path, monkeypatch):
    url = "https://boinc.example.org/proj/"
    monkeypatch.delenv("BOINC_PYMW_AUTHENTICATOR", raising=False)
    creds = tmp_path / "credentials"
    creds.write_text("# mine\nabc123\nhttps://boinc.example.org/proj def456\n")
    creds.chmod(0o644)
    with pytest.raises(CredentialsError, match="chmod 600"):
        find_authenticator(url, credentials=creds)
    creds.chmod(0o600)
    assert find_authenticator(url, credentials=creds) == "def456"
    assert find_authenticator("https://other.example.org/", credentials=creds) == "abc123"
    monkeypatch.setenv("BOINC_PYMW_AUTHENTICATOR", "fromenv")
    assert find_authenticator(url, credentials=creds) == "fromenv"
    assert find_authenticator(url, "given", credentials=creds) == "given"
    monkeypatch.delenv("BOINC_PYMW_AUTHENTICATOR")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "empty"))
    with pytest.raises(CredentialsError, match="--authenticator"):
        find_authenticator(url)


def test_plain_http_to_another_host_warns_and_the_authenticator_stays_hidden(world):
    from boinc_pymw.backends.boinc._credentials import warn_if_insecure

    with pytest.warns(InsecureTransportWarning):
        warn_if_insecure("http://boinc.example.org/proj/")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_insecure("http://127.0.0.1/proj/")
        warn_if_insecure("https://boinc.example.org/proj/")
    client = SubmitClient(world.url, world.auth, retries=0)
    assert world.auth not in repr(client)
    world.standin.close()
    with pytest.raises(RpcTransportError) as info:
        client.ping()
    assert world.auth not in str(info.value)


def test_command_line_options_choose_remote_mode():
    import argparse

    from boinc_pymw import add_arguments
    from boinc_pymw.backends.boinc.server import BoincBackend

    args = add_arguments(argparse.ArgumentParser()).parse_args(
        ["-i", "boinc", "--url", "https://p.example.org/", "--app", "a", "--batch", "b",
         "--credentials", "/c", "--keep-batch"])
    options = BoincBackend.options_from_args(args)
    assert options == {"url": "https://p.example.org/", "app": "a", "batch": "b",
                       "credentials": "/c", "keep_batch": True}
    if hasattr(BoincBackend, "check_options"):     # Master checks options up front
        BoincBackend.check_options(options)
        with pytest.raises(TypeError, match="keep_batch"):
            BoincBackend.check_options({"project": "/p", "keep_batch": True})


# -- commands --------------------------------------------------------------------------------------
def test_submitters_rows_are_the_ones_boinc_checks(world):
    from boinc_pymw.cli.submitters import revoke, submitters

    db = world.project.db
    grant(db, "scientist@example.org", [APP])                 # twice: one row
    assert db.query("SELECT user_id, app_id, manage FROM user_submit_app") == [
        {"user_id": 1, "app_id": world.app_id, "manage": 0}]
    row = db.query_one("SELECT * FROM user_submit WHERE user_id=1")
    assert (row["submit_all"], row["manage_all"], row["max_jobs_in_progress"]) == (0, 0, 0)
    grant(db, "scientist@example.org")                        # every app
    with pytest.raises(Exception, match="may submit to every app"):
        revoke(db, "scientist@example.org", [APP])
    assert submitters(db)[0]["apps"] == ["*"]
    assert "may no longer submit" in revoke(db, "scientist@example.org")
    assert db.query("SELECT * FROM user_submit_app") == [] and submitters(db) == []
    with pytest.raises(Exception, match="no app named"):
        grant(db, "scientist@example.org", ["nope"])
    assert submitters(db) == []                               # nothing half-written


def test_submitters_command(world, capsys):
    p = world.project.path
    assert cli_main(["submitters", "-p", p, "list"]) == 0
    out = capsys.readouterr().out
    assert "scientist@example.org" in out and APP in out and world.auth not in out
    assert cli_main(["submitters", "-p", p, "remove", "scientist@example.org",
                     "--app", APP]) == 0
    with pytest.raises(SubmissionRefused, match="may not submit jobs to app pymwapp"):
        master(world)
    assert cli_main(["submitters", "-p", p, "add", "scientist@example.org"]) == 0
    assert "every app" in capsys.readouterr().out
    master(world).shutdown()
    assert cli_main(["submitters", "-p", p, "remove", "scientist@example.org"]) == 0
    with pytest.raises(SubmissionRefused, match="may not submit jobs remotely"):
        master(world)
    assert cli_main(["submitters", "-p", p, "add", "who@example.org"]) == 1
    assert "no account" in capsys.readouterr().err


def test_status_url_lists_the_accounts_batches(world, capsys, monkeypatch):
    m = master(world, keep_batch=True)
    future = m.submit(tasks.square, 6)
    drive(world, [future])
    m.shutdown()
    monkeypatch.setenv("BOINC_PYMW_AUTHENTICATOR", world.auth)
    assert cli_main(["status", "--url", world.url]) == 0
    out = capsys.readouterr().out
    assert m.backend.batch in out and APP in out and world.auth not in out
    assert cli_main(["status", "--url", world.url, "--batch", m.backend.batch]) == 0
    assert "1 done" in capsys.readouterr().out
