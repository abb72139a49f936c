"""PyMW 0.4-style scripts run unchanged: each test writes a script the way
PyMW's examples are written (optparse options, ``interfaces.get_interface``,
``submit_task`` with modules/dep_funcs/data_files, ``get_result``), runs it
as its own process and checks what it printed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_script(tmp_path, body: str, *args: str, timeout: float = 120):
    script = tmp_path / "pymw_script.py"
    script.write_text(textwrap.dedent(body))
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.pop("BOINC_PYMW_INTERFACE", None)
    proc = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=tmp_path, env=env)
    reports = [json.loads(line[len("REPORT "):]) for line in proc.stdout.splitlines()
               if line.startswith("REPORT ")]
    return proc, reports


MONTE_PI = """
    #!/usr/bin/env python
    from pymw import pymw
    from pymw import interfaces
    import json, math, random, time
    from optparse import OptionParser

    def throw_dart():
        pt = math.pow(random.random(), 2) + math.pow(random.random(), 2)
        if pt <= 1: return 1
        else: return 0

    def monte_pi(rand_seed, num_tests):
        random.seed(rand_seed)
        num_hits = 0
        for i in range(int(num_tests)):
            num_hits += throw_dart()
        return [num_hits, num_tests]

    parser = OptionParser(usage="usage: %prog")
    parser.add_option("-t", "--num_tests", dest="n_tests", default="20000",
                      help="number of Monte Carlo tests to perform", metavar="N")
    options, args = interfaces.parse_options(parser)
    n_workers, n_tests = int(options.n_workers), int(options.n_tests)
    interface_obj = interfaces.get_interface(options)
    pymw_master = pymw.PyMW_Master(interface=interface_obj)

    num_tasks = n_workers
    tasks = [pymw_master.submit_task(monte_pi,
                                     input_data=(random.random(), n_tests / num_tasks,),
                                     modules=("random", "math"),
                                     dep_funcs=(throw_dart,))
             for i in range(num_tasks)]
    num_hits = num_tests = 0
    for i in range(num_tasks):
        res_task, result = pymw_master.get_result()
        num_hits += result[0]
        num_tests += result[1]
    status = pymw_master.get_status()
    print("REPORT " + json.dumps({
        "pi": 4.0 * num_hits / num_tests, "tests": num_tests,
        "interface": options.interface, "backend": status["interface"],
        "workers": status["workers"], "tasks": len(status["tasks"]),
        "tasks_are_handles": all(t in tasks for t in status["tasks"]),
        "progress": [t.get_progress() for t in tasks],
        "times": all(t.get_total_time() >= t.get_execution_time() >= 0 for t in tasks)}))
"""


@pytest.mark.parametrize("switch", [[], ["-i", "generic", "-n", "2"],
                                    ["--interface", "multicore", "--num_workers", "3"]])
def test_monte_pi_as_pymw_wrote_it(tmp_path, switch):
    proc, reports = run_script(tmp_path, MONTE_PI, *switch, "-t", "20000")
    assert proc.returncode == 0, proc.stderr
    (out,) = reports
    workers = int(switch[-1]) if switch else 4   # PyMW's default -n is 4
    assert abs(out["pi"] - 3.14159) < 0.1 and out["tests"] == 20000
    assert out["interface"] == (switch[1] if switch else "generic")
    assert out["backend"] == "multicore" and out["workers"] == workers
    assert out["tasks"] == workers and out["tasks_are_handles"]
    assert out["progress"] == [1.0] * workers and out["times"]


STRING_COUNTER = """
    from pymw import *
    from pymw import interfaces
    import json, os

    def count_num_strs(search_str):
        char_count = 0
        fp = open("words.txt", "r")
        for line in fp:
            char_count += line.count(search_str)
        fp.close()
        return char_count, sorted(os.listdir("."))

    def check_files(file_list):
        for fname in file_list:
            with open(fname) as fp:
                if fp.readline().count("booga") == 0:
                    return False
        return True

    options, args = interfaces.parse_options()
    pymw_master = pymw.PyMW_Master(interface=interfaces.get_interface(options))
    search_strs = ["a", "b", "c"]
    tasks = [pymw_master.submit_task(count_num_strs, input_data=(s,),
                                     data_files=("data/words.txt", "data/other.dat"))
             for s in search_strs]
    counts, listings = [], []
    for i in range(len(tasks)):
        res_task, (count, listing) = pymw_master.get_result(tasks[i])
        counts.append(count)
        listings.append(listing)
    names = ["f%d.txt" % i for i in range(4)]
    for name in names:
        with open(os.path.join("data", name), "w") as f:
            f.write("booga\\n")
    check = pymw_master.submit_task(check_files, input_data=(names,),
                                    data_files=tuple(os.path.join("data", n) for n in names))
    print("REPORT " + json.dumps({"counts": counts, "listings": listings,
                                  "check": pymw_master.get_result(check)[1],
                                  "left_in_cwd": sorted(os.listdir("."))}))
"""


@pytest.mark.parametrize("switch", [["-i", "multicore", "-n", "2"], ["-n", "1"]])
def test_data_files_are_in_the_task_directory(tmp_path, switch):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "words.txt").write_text("abc\naab\nbbb\n")
    (tmp_path / "data" / "other.dat").write_bytes(b"\x00\x01")
    proc, reports = run_script(tmp_path, STRING_COUNTER, *switch)
    assert proc.returncode == 0, proc.stderr
    (out,) = reports
    assert out["counts"] == [3, 5, 1]
    assert out["listings"] == [["other.dat", "words.txt"]] * 3  # its own directory, nothing else
    assert out["check"] is True
    assert out["left_in_cwd"] == ["data", "pymw_script.py"]   # no tasks/ directory, no leftovers


MAPREDUCE = """
    from pymw import pymw, interfaces
    import json

    def square(list1):
        for i in range(len(list1)):
            list1[i] *= list1[i]
        return list1

    def plus(list2):
        return sum(list2)

    def count_bytes(blocks):
        total = 0
        for name, start, end in blocks:
            with open(name, "rb") as f:
                f.seek(start)
                total += f.read(end - start).count(b"x")
        return [total]

    options, args = interfaces.parse_options()
    master = pymw.PyMW_Master(interface=interfaces.get_interface(options))
    mapreduce = pymw.PyMW_MapReduce(master)
    task_mr = mapreduce.submit_task_mapreduce(square, plus, 10, input_data=list(range(1, 21)))
    mr_task, result = master.get_result(task_mr)
    task_mr2 = mapreduce.submit_task_mapreduce(square, plus, 4, input_data=list(range(1, 21)),
                                               red_worker=3)
    result2 = master.get_result()[1]
    files_task = mapreduce.submit_task_mapreduce(count_bytes, plus, 3,
                                                 input_data=[["a.txt"], ["b.txt"]],
                                                 red_worker=1, file_input=True)
    result3 = master.get_result(files_task)[1]
    try:
        master.get_result()
        leftover = "none raised"
    except pymw.TaskException as exc:
        leftover = str(exc)
    print("REPORT " + json.dumps({"same_task": mr_task is task_mr, "result": sorted(result),
                                  "total2": sum(result2), "parts2": len(result2),
                                  "files": result3, "leftover": leftover}))
"""


def test_mapreduce_as_in_pymw(tmp_path):
    (tmp_path / "a.txt").write_text("x" * 100 + "y" * 7)
    (tmp_path / "b.txt").write_text("xy" * 50)
    proc, reports = run_script(tmp_path, MAPREDUCE, "-n", "2")
    assert proc.returncode == 0, proc.stderr
    (out,) = reports
    assert out["same_task"] is True
    assert sum(out["result"]) == 2870 and len(out["result"]) == 10   # PyMW's own check
    assert out["total2"] == 2870 and out["parts2"] == 3
    assert out["files"] == [150]
    # the map and reduce steps are not handed to the user's get_result()
    assert "already returned" in out["leftover"]


ERRORS = """
    from pymw import pymw, interfaces
    import json, sys

    def divide(a, b):
        return a / b

    out = {}
    options, args = interfaces.parse_options(args=sys.argv[1:])
    try:
        master = pymw.PyMW_Master(interface=interfaces.get_interface(options))
    except pymw.InterfaceException as exc:
        print("REPORT " + json.dumps({"interface_error": str(exc)}))
        raise SystemExit(0)
    try:
        master.get_result()
    except pymw.TaskException as exc:
        out["nothing_submitted"] = str(exc)
    task = master.submit_task(divide, input_data=(1, 0))
    try:
        master.get_result(task)
    except ZeroDivisionError as exc:
        out["task_error"] = type(exc).__name__
    for bad in (1234, [1, 2]):
        try:
            master.get_result(bad)
        except pymw.TaskException as exc:
            out.setdefault("bad_handles", []).append(str(exc))
    for executable in ("dead_parrot.py", 2):
        try:
            master.submit_task(executable)
        except pymw.TaskException as exc:
            out.setdefault("bad_executables", []).append(str(exc))
    print("REPORT " + json.dumps(out))
"""


def test_pymw_errors_are_pymw_exceptions(tmp_path):
    proc, reports = run_script(tmp_path, ERRORS, "-n", "1")
    assert proc.returncode == 0, proc.stderr
    (out,) = reports
    assert "No tasks have been submitted" in out["nothing_submitted"]
    assert out["task_error"] == "ZeroDivisionError"
    assert len(out["bad_handles"]) == 2 and "task" in out["bad_handles"][0]
    assert "script executables are not supported" in out["bad_executables"][0]
    assert len(out["bad_executables"]) == 2


@pytest.mark.parametrize("name, words", [("ganga", "ganga"), ("grid_simulator", "grid simulator"),
                                         ("carrier-pigeon", "unknown interface")])
def test_interfaces_we_do_not_have_fail_with_a_clear_message(tmp_path, name, words):
    proc, reports = run_script(tmp_path, ERRORS, "-i", name)
    assert proc.returncode == 0, proc.stderr
    (out,) = reports
    assert words in out["interface_error"]
