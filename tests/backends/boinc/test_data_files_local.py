"""PyMW's data_files on -i boinc-local: the data files are inputs of the
workunit copied into each replica's slot (our slot runner, or the real BOINC
client), where the task opens them by base name."""

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from boinc_pymw import Master
from boinc_pymw.backends.boinc._data_files import DataFileError

from . import tasks
from .conftest import xdg_cache_home

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("client", ["builtin", "boinc"])
def test_tasks_read_their_data_files_in_the_slot(tmp_path, local_cache, client):
    if client == "boinc" and not shutil.which("boinc"):
        pytest.skip("needs the BOINC client (boinc-client)")
    words = tmp_path / "words.txt"
    words.write_text("to be or not to be\n")
    with Master(interface="boinc-local", workers=2, batch="data", client=client,
                workdir=str(tmp_path / "work"), cache_dir=str(local_cache)) as master:
        to = master.submit_task(tasks.count_in_file, ("to",), data_files=[str(words)])
        be = master.submit_task(tasks.count_in_file, ("be",), data_files=[str(words)])
        with pytest.raises(ValueError, match="same name"):
            master.submit_task(tasks.count_in_file, ("x",),
                               data_files=[str(tmp_path / "words.txt"), str(words)])
        assert master.get_result(to)[1] == 2 and master.get_result(be)[1] == 2
    # one staged copy, named by content, for both workunits
    staged = sorted(p.name for p in (tmp_path / "work" / "download").glob("pymw_*"))
    assert len(staged) == 1 and staged[0].endswith("_words.txt")


def test_reattaching_with_other_data_files_is_refused(tmp_path, local_cache):
    words = tmp_path / "words.txt"
    words.write_text("a a\n")

    def local(**options):
        return Master(interface="boinc-local", workers=1, batch="again", quorum=1,
                      client="builtin", workdir=str(tmp_path / "work"),
                      cache_dir=str(local_cache), **options)

    with local() as master:
        task = master.submit_task(tasks.count_in_file, ("a",), data_files=[str(words)])
        assert master.get_result(task)[1] == 2
    with local() as master:                   # the same call and file: from the store
        task = master.submit_task(tasks.count_in_file, ("a",), data_files=[str(words)])
        assert master.get_result(task)[1] == 2
    words.write_text("a\n")
    with local() as master:
        with pytest.raises(Exception, match="differs from the workunit again_0"):
            master.submit_task(tasks.count_in_file, ("a",), data_files=[str(words)])
    with local() as master:
        with pytest.raises(Exception, match="differs from the workunit again_0"):
            master.submit_task(tasks.count_in_file, ("a",))


def test_a_data_file_named_like_the_job_input_is_refused(tmp_path, local_cache):
    clash = tmp_path / "input.json"
    clash.write_text("{}")
    with Master(interface="boinc-local", workers=1, batch="clash", client="builtin",
                workdir=str(tmp_path / "work"), cache_dir=str(local_cache)) as master:
        task = master.submit_task(tasks.count_in_file, ("a",), data_files=[str(clash)])
        with pytest.raises(DataFileError, match="'input.json' is taken"):
            master.get_result(task)
    assert not list((tmp_path / "work" / "download").glob("*.json"))


STRING_COUNTER = '''
    from pymw import pymw
    from pymw import interfaces
    from optparse import OptionParser
    from word_tasks import count_words

    parser = OptionParser(usage="usage: %prog")
    options, args = interfaces.parse_options(parser)
    interface_obj = interfaces.get_interface(options)
    pymw_master = pymw.PyMW_Master(interface=interface_obj)

    words = ["the", "of", "whale"]
    tasks = [pymw_master.submit_task(count_words, input_data=(w,), modules=("os",),
                                     data_files=("moby.txt",))
             for w in words]
    for task in tasks:
        res_task, result = pymw_master.get_result(task)
        print("COUNT", words[tasks.index(res_task)], result)
'''

WORD_TASKS = '''
    def count_words(word):
        with open("moby.txt") as f:
            return f.read().lower().split().count(word)
'''


def test_a_pymw_string_counter_script_runs_on_boinc_local(tmp_path, local_cache):
    (tmp_path / "string_counter.py").write_text(textwrap.dedent(STRING_COUNTER))
    (tmp_path / "word_tasks.py").write_text(textwrap.dedent(WORD_TASKS))
    (tmp_path / "moby.txt").write_text("Call me Ishmael. The whale, the sea of the whale\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT), XDG_CACHE_HOME=xdg_cache_home(local_cache),
               TMPDIR=str(tmp_path))
    env.pop("BOINC_PYMW_INTERFACE", None)
    done = subprocess.run([sys.executable, "string_counter.py", "-i", "boinc-local", "-n", "2"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    counts = dict(line.split()[1:] for line in done.stdout.splitlines()
                  if line.startswith("COUNT"))
    assert counts == {"the": "3", "of": "1", "whale": "1"}
