"""boinc_pymw status / results on a batch run against the test database."""

import json

from boinc_pymw import Master
from boinc_pymw.cli import main

from . import tasks


def run_batch(world, batch):
    master = Master(interface="boinc", project=world.project.path, app="pymwapp",
                    batch=batch, poll_interval=0.1)
    futures = [master.submit(tasks.square, 7), master.submit(tasks.raises, "bad input"),
               master.submit(tasks.crashes), master.submit(tasks.square, 8)]
    return master, futures


def test_status_and_results(boinc_world, capsys):
    w = boinc_world
    master, futures = run_batch(w, "report")
    w.volunteers.step(limit=3)                  # the last call stays pending
    for f in futures[:3]:
        f.exception(timeout=60)
    assert main(["status", "-p", w.project.path]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["batch", "app", "created", "state", "workunits", "done",
                                "failed", "pending", "progress"]
    row = table[1].split()
    assert row[0] == "report" and row[1] == "pymwapp"
    assert row[-5:] == ["4", "2", "1", "1", "75%"]

    assert main(["status", "-p", w.project.path, "--batch", "report"]) == 0
    detail = capsys.readouterr().out
    assert "results: 2 unsent" in detail and "2 errors" in detail

    assert main(["results", "-p", w.project.path, "--batch", "report"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert lines[0] == {"workunit": "report_0", "index": 0, "ok": True, "value": 49}
    assert lines[1]["ok"] is False and lines[1]["error"] == {"type": "ValueError",
                                                             "message": "bad input"}
    assert lines[2]["ok"] is False and lines[2]["error"]["type"] == "WorkunitFailed"
    assert "too many results ended in error" in lines[2]["error"]["message"]
    assert len(lines) == 3

    assert main(["results", "-p", w.project.path, "--batch", "report", "--all"]) == 0
    last = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert last == {"workunit": "report_3", "index": 3, "pending": True}
    master.shutdown(wait=False, cancel_futures=True)


def test_unknown_batch_is_a_clear_error(boinc_world, capsys):
    assert main(["status", "-p", boinc_world.project.path, "--batch", "nope"]) == 1
    assert "no batch named 'nope'" in capsys.readouterr().err
    assert main(["results", "-p", boinc_world.project.path, "--batch", "nope"]) == 1


def test_local_results_export(tmp_path, local_cache, capsys):
    with Master(interface="boinc-local", workers=2, quorum=1, batch="lx",
                workdir=str(tmp_path / "w"), cache_dir=str(local_cache)) as master:
        assert list(master.map(tasks.square, [2, 3])) == [4, 9]
    capsys.readouterr()
    assert main(["results", "--batch", "lx", "--workdir", str(tmp_path / "w")]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [(x["index"], x["value"]) for x in lines] == [(0, 4), (1, 9)]


def test_results_into_a_closed_pipe_ends_quietly(tmp_path):
    """``boinc_pymw results ... | head -1``: no BrokenPipeError traceback."""
    import subprocess
    import sys

    work = tmp_path / "w"
    (work / "download").mkdir(parents=True)
    group = work / "results_store" / "batch_1"
    (group / "out").mkdir(parents=True)
    (group / "out" / "output.json").write_text(json.dumps({"ok": True, "value": "v" * 100}))
    for i in range(3000):                       # ~400 KB of JSON lines: more than a pipe holds
        (work / "download" / f"big_{i}.json").write_text("{}")
        (group / f"big_{i}.json").write_text(json.dumps(
            {"status": "done", "wu_name": f"big_{i}",
             "outputs": [{"open_name": "output.json", "file": "out/output.json"}]}))
    code = "import sys; from boinc_pymw.cli import main; sys.exit(main())"
    proc = subprocess.run(
        f"{sys.executable} -c '{code}' results --batch big --workdir {work} | head -1",
        shell=True, capture_output=True, text=True, timeout=120)
    assert json.loads(proc.stdout)["index"] == 0
    assert proc.stderr == ""
