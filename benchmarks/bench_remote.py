"""``-i boinc --url`` (remote) against ``-i boinc -p`` (server mode): same project, same run.

  submit  calls/s until every call is a job on the server: remote (XML over
          HTTP to the stand-in of 1.4.7's PHP, which stages each inline input
          as jf_<md5> and runs create_work) vs server mode (create_work
          straight into the database), both handed the calls in one
          ``Backend.submit``
  fetch   results/s of a reattached, finished batch: remote (one query_batch,
          then query_job and get_output.php per job, 4 at a time) vs server
          mode (one query, then the results store)
  fetch with 20 ms latency per request (a distant server): remote with 4
          fetch threads vs 1 (the peer: the same client fetching one job at a time)

The stand-in (tests/backends/boinc/rpc_standin.py) answers as the PHP does
but is Python serving one request at a time, so the remote figures are
those of our client plus a stand-in server, not of Apache and PHP. Needs
MariaDB at 127.0.0.1. ``--quick`` uses 50 calls.

    .venv/bin/python benchmarks/bench_remote.py [-n 300] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

from backends.boinc import tasks  # noqa: E402
from boinc_pymw.backends.base import WorkItem  # noqa: E402


def finish_jobs(project, app_id: int) -> int:
    """Play transitioner, volunteer and validator for every open job of an app: one
    valid result each, its output (computed here from the test suite's own task
    code) in upload/, listed in xml_doc_out as the scheduler records it."""
    from backends.boinc.sim_server import compute
    from boinc_pymw.boinc.output_files import parse_file_refs, safe_xml
    from boinc_pymw.boinc.states import ClientState, Outcome, ServerState, ValidateState
    from boinc_pymw.local.simulate import result_row

    db = project.db
    wus = db.query("SELECT id, name, appid, batch, xml_doc FROM workunit WHERE appid=%s AND "
                   "canonical_resultid=0", (app_id,))
    now = int(time.time())
    db.insert_many("result", [result_row(
        wu, 0, server_state=int(ServerState.OVER), outcome=int(Outcome.SUCCESS),
        client_state=int(ClientState.FILES_UPLOADED), sent_time=now, received_time=now,
        validate_state=int(ValidateState.VALID)) for wu in wus])
    by_id = {wu["id"]: wu for wu in wus}
    for r in db.query("SELECT id, workunitid, xml_doc_in FROM result WHERE appid=%s",
                      (app_id,)):
        wu = by_id.get(r["workunitid"])
        if wu is None:
            continue
        physical = safe_xml(wu["xml_doc"], wrap=True).find("workunit/file_ref") \
            .findtext("file_name")
        with open(project.download_path(physical), "rb") as f:
            output = compute(json.loads(f.read()))
        names = []
        for ref in parse_file_refs(r["xml_doc_in"]):
            with open(project.upload_path(ref["name"], create=True), "wb") as f:
                f.write(output)
            names.append(ref["name"])
        db.execute("UPDATE result SET xml_doc_out=%s WHERE id=%s", ("".join(
            f"<file_info>\n<name>{n}</name>\n</file_info>\n" for n in names), r["id"]))
        db.execute("UPDATE workunit SET canonical_resultid=%s WHERE id=%s",
                   (r["id"], wu["id"]))
    return len(wus)


def setup(work: str):
    from backends.boinc.test_remote import code_zip
    from boinc_pymw.boinc.testing import add_app, add_platform, add_user, make_project
    from boinc_pymw.cli.submitters import grant
    from boinc_pymw.local.simulate import add_app_version
    from boinc_pymw.templates import write_app_templates

    project = make_project(os.path.join(work, "proj"), f"pymw_bench_{os.getpid()}")
    platform = add_platform(project)
    apps = {}
    for name in ("remapp", "srvapp"):
        apps[name] = add_app(project, name)
        add_app_version(project, apps[name], platform)
        write_app_templates(project, name, inputs=["input.json"], outputs=["output.json"],
                            min_quorum=1, target_nresults=1)
    tasks_py = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                            "backends", "boinc", "tasks.py")
    with open(tasks_py) as f, open(os.path.join(project.download_dir,
                                                "remapp_1.0_code.zip"), "wb") as out:
        out.write(code_zip({"backends/__init__.py": "", "backends/boinc/__init__.py": "",
                            "backends/boinc/tasks.py": f.read()}))
    add_user(project, "bench@example.org")
    auth = project.db.query_one("SELECT authenticator FROM user")["authenticator"]
    grant(project.db, "bench@example.org", ["remapp"])
    return project, apps, auth


def one_round(n: int, work: str) -> dict:
    from backends.boinc.rpc_standin import StandIn
    from backends.boinc.sim_server import SimulatedServer
    from boinc_pymw import Master

    project, apps, auth = setup(work)
    standin = StandIn(project)
    figures = {}
    try:
        remote_opts = dict(interface="boinc", url=standin.url, app="remapp",
                           authenticator=auth, poll_interval=3600, submit_delay=0.0)
        for mode, opts in (("remote", remote_opts),
                           ("server", dict(interface="boinc", project=project.path,
                                           app="srvapp", poll_interval=3600))):
            master = Master(batch=f"bench_{mode}", **opts)
            items = [WorkItem(tasks.square, (i,)) for i in range(n)]
            t0 = time.perf_counter()
            master.backend.submit(items)
            if mode == "remote":
                while master.backend.status()["pending_jobs"] < n:
                    time.sleep(0.001)
            figures[f"submit {mode}"] = n / (time.perf_counter() - t0)
            master.shutdown(wait=False)
        finish_jobs(project, apps["remapp"])
        SimulatedServer(project, "srvapp", apps["srvapp"]).finish_all()
        for mode, opts in (("remote", dict(remote_opts, poll_interval=0.001)),
                           ("server", dict(interface="boinc", project=project.path,
                                           app="srvapp", poll_interval=0.001))):
            t0 = time.perf_counter()
            with Master(batch=f"bench_{mode}", **opts) as master:
                assert list(master.map(tasks.square, range(n))) == [i * i for i in range(n)]
            figures[f"fetch {mode}"] = n / (time.perf_counter() - t0)
        standin.latency = 0.02
        for threads in (4, 1):
            t0 = time.perf_counter()
            with Master(batch="bench_remote", **dict(remote_opts, poll_interval=0.001,
                                                     fetch_threads=threads)) as master:
                assert list(master.map(tasks.square, range(n))) == [i * i for i in range(n)]
            figures[f"latency {threads}"] = n / (time.perf_counter() - t0)
    finally:
        standin.close()
        project.drop()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=300, help="calls per batch")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n = 50 if args.quick else args.n
    rounds = []
    for _ in range(1 if args.quick else args.rounds):
        with tempfile.TemporaryDirectory(prefix="bench_remote_") as work:
            rounds.append(one_round(n, work))
    med = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    print(f"{n} calls, median of {len(rounds)} round(s)")
    print("| figure | remote (--url) | server (-p) | ratio remote/server |")
    print("| --- | --- | --- | --- |")
    for what in ("submit", "fetch"):
        r, s = med[f"{what} remote"], med[f"{what} server"]
        print(f"| {what}, calls/s | {r:,.0f} | {s:,.0f} | {r / s:.2f} |")
    four, one = med["latency 4"], med["latency 1"]
    print(f"\nfetch at 20 ms per request: 4 fetch threads {four:,.0f} calls/s, 1 thread "
          f"{one:,.0f} calls/s, ratio {four / one:.2f}")


if __name__ == "__main__":
    main()
