"""-i boinc-local: the whole pipeline on this machine (slots, launcher, portable
interpreter, the project's validator and assimilator), no server."""

import os
import shutil

import pytest

from boinc_pymw import Master
from boinc_pymw.backends.boinc import WorkunitFailed

from . import tasks


def local_master(tmp_path, local_cache, batch="local", **options):
    return Master(interface="boinc-local", workers=2, batch=batch,
                  workdir=str(tmp_path / "work"), cache_dir=str(local_cache), **options)


def test_same_answers_as_multicore(tmp_path, local_cache):
    calls = [(2, 3), (10, -4), (0, 0)]
    with Master(interface="multicore", workers=2) as multicore:
        expected = list(multicore.map(tasks.add, *zip(*calls)))
    with local_master(tmp_path, local_cache) as master:
        assert list(master.map(tasks.add, *zip(*calls))) == expected == [5, 6, 0]
        status = master.get_status()
    assert status["min_quorum"] == 2 and status["target_nresults"] == 2
    # each workunit went through two slots: two results, each with its stderr.txt
    results = sorted(p.name for p in (tmp_path / "work" / "client" / "projects"
                                      / "localhost_boinc-pymw").glob("local_*_r*_0"))
    assert len(results) == 2 * len(calls)


@pytest.mark.parametrize("client", ["builtin", "boinc"])
def test_raise_crash_and_garbage_are_clear_errors(tmp_path, local_cache, client):
    if client == "boinc" and not shutil.which("boinc"):
        pytest.skip("needs the BOINC client (boinc-client)")
    with local_master(tmp_path, local_cache, client=client) as master:
        raised = master.submit(tasks.raises, "task said no")
        crashed = master.submit(tasks.crashes)
        garbage = master.submit(tasks.writes_garbage)
        with pytest.raises(ValueError, match="task said no"):
            raised.result()
        with pytest.raises(WorkunitFailed) as crash:
            crashed.result()
        with pytest.raises(WorkunitFailed) as junk:
            garbage.result()
    assert "too many results ended in error" in str(crash.value)
    assert "process got signal 11" in str(crash.value)   # what each replica did
    assert crash.value.stderr                           # and the app's stderr.txt
    assert "validator refused its output" in str(junk.value)


def test_restart_with_the_same_batch_runs_nothing_twice(tmp_path, local_cache):
    log = tmp_path / "log"
    log.mkdir()
    with local_master(tmp_path, local_cache, batch="again", quorum=1) as master:
        assert list(master.map(tasks.logged_square, [str(log)] * 3, [1, 2, 3])) == [1, 4, 9]
    assert len(os.listdir(log)) == 3
    with local_master(tmp_path, local_cache, batch="again", quorum=1) as master:
        assert list(master.map(tasks.logged_square, [str(log)] * 4, [1, 2, 3, 4])) == [1, 4, 9, 16]
    assert sorted(name.split(".")[0] for name in os.listdir(log)) == ["1", "2", "3", "4"]
    with local_master(tmp_path, local_cache, batch="again", quorum=1) as master:
        with pytest.raises(Exception, match="differs from the workunit again_0"):
            master.submit(tasks.logged_square, str(log), 5)


def test_an_unencodable_call_fails_alone(tmp_path, local_cache):
    # sort_keys cannot order {1, "a"}: only that call's future fails
    with local_master(tmp_path, local_cache, batch="mixed", quorum=1, client="builtin") as master:
        bad = master.submit(tasks.add, {1: 1, "a": 2}, 0)
        good = master.submit(tasks.add, 1, 2)
        with pytest.raises(TypeError):
            bad.result()
        assert good.result() == 3
