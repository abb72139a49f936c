"""The ``pymw`` package's names and options, checked in-process: PyMW's option
names and dests, which back end each interface selects, and PyMW_Master's
constructor."""

from __future__ import annotations

import logging
from optparse import OptionParser

import pytest

import boinc_pymw
from pymw import interfaces, pymw


def test_parse_options_has_pymw_names_dests_and_defaults():
    options, args = interfaces.parse_options(args=[])
    assert (options.interface, options.n_workers, options.p_home) == ("generic", "4", "")
    assert (options.custom_app_dir, options.custom_app_args) == ("", "")
    assert options.g_loc == "~/Ganga/bin/ganga"
    assert args == []
    options, args = interfaces.parse_options(
        args=["-i", "mpi", "-n", "7", "-p", "/proj", "-c", "app", "-a", "x", "rest"])
    assert (options.interface, options.n_workers, options.p_home) == ("mpi", "7", "/proj")
    assert (options.custom_app_dir, options.custom_app_args, args) == ("app", "x", ["rest"])
    long_form, _ = interfaces.parse_options(
        args=["--interface", "boinc", "--num_workers", "2", "--project_home", "/p",
              "--app_path", "d", "--app_args", "a", "--ganga_loc", "g"])
    assert (long_form.interface, long_form.n_workers, long_form.p_home, long_form.g_loc) == \
        ("boinc", "2", "/p", "g")


def test_parse_options_adds_to_the_scripts_own_parser(monkeypatch):
    parser = OptionParser(usage="usage: %prog")
    parser.add_option("-t", "--num_tests", dest="n_tests", default="10")
    monkeypatch.setattr("sys.argv", ["script.py", "-t", "99", "-i", "multicore"])
    options, args = interfaces.parse_options(parser)
    assert (options.n_tests, options.interface) == ("99", "multicore")


@pytest.mark.parametrize("argv, backend, workers, options", [
    ([], "multicore", 4, {}),
    (["-i", "generic", "-n", "2"], "multicore", 2, {}),
    (["-i", "multicore", "-n", "3"], "multicore", 3, {}),
    (["-i", "mpi", "-n", "5"], "mpi", 5, {}),
    (["-i", "condor"], "condor", None, {}),
    (["-i", "boinc", "-p", "/srv/proj"], "boinc", None, {"project": "/srv/proj"}),
    (["-i", "boinc-local", "-n", "2"], "boinc-local", 2, {}),
])
def test_get_interface_selects_a_back_end(argv, backend, workers, options):
    interface = interfaces.get_interface(interfaces.parse_options(args=argv)[0])
    assert (interface.backend, interface.num_workers, interface.options) == \
        (backend, workers, options)
    assert backend in boinc_pymw.backends.names()


def test_interfaces_pymw_scripts_build_themselves():
    assert interfaces.generic.GenericInterface().num_workers == 1
    assert interfaces.multicore.MulticoreInterface(num_workers=3).num_workers == 3
    assert interfaces.mpi.MPIInterface(2).backend == "mpi"
    assert interfaces.condor.CondorInterface(python_loc="/opt/py3").options == \
        {"python": "/opt/py3"}
    boinc = interfaces.boinc.BOINCInterface(project_home="/p", custom_app_dir="",
                                            custom_args=[""])
    boinc.set_boinc_args(target_nresults=3, min_quorum=2)
    assert boinc.options == {"project": "/p", "target_nresults": 3, "min_quorum": 2}
    with pytest.warns(UserWarning, match="custom_app_dir"):
        interfaces.boinc.BOINCInterface("/p", custom_app_dir="/my/app")
    with pytest.raises(pymw.InterfaceException, match="python_loc"):
        interfaces.generic.GenericInterface(python_loc="/usr/local/dead_parrot/python")
    with pytest.raises(pymw.InterfaceException, match="ganga"):
        interfaces.ganga.GANGAInterface(python_loc="", ganga_loc="")
    with pytest.raises(pymw.InterfaceException, match="grid simulator"):
        interfaces.grid_simulator.GridSimulatorInterface()
    with pytest.raises(pymw.InterfaceException, match="num_workers"):
        interfaces.get_interface(interfaces.parse_options(args=["-n", "many"])[0])


def test_boinc_options_from_pymw_reach_the_boinc_back_end():
    """set_boinc_args' replication and -p are options the BOINC back end takes."""
    from boinc_pymw.backends import get

    boinc = interfaces.boinc.BOINCInterface(project_home="/p")
    boinc.set_boinc_args()
    get(boinc.backend).check_options(boinc.options)   # no TypeError
    get("boinc-local").check_options(interfaces.boinc.BOINCLocalInterface("/p").options)


def test_pymw_master_is_a_master_with_pymw_defaults():
    master = pymw.PyMW_Master()
    try:
        assert isinstance(master, boinc_pymw.Master)
        assert master.interface == "multicore" and master.get_status()["workers"] == 1
        assert master.delete_files is True
        task = master.submit_task(pow, input_data=(2, 10))
        assert master.get_result(task) == (task, 1024)
        assert master.get_progress(task) == [1.0]
        assert master.get_progress([task, task]) == [1.0, 1.0]
        assert master.get_status()["tasks"] == [task]
        assert task.get_progress() == 1.0
        assert pymw.PyMW_Task is type(task)
        with pytest.raises(pymw.TaskException, match="not been submitted"):
            master.get_progress(object())
    finally:
        master.shutdown()


def test_pymw_master_arguments():
    class HomeMadeInterface:
        def execute_task(self, task, worker):
            pass

    with pytest.raises(pymw.InterfaceException, match="execute_task"):
        pymw.PyMW_Master(interface=HomeMadeInterface())
    with pytest.warns(UserWarning, match="scheduler_func"):
        master = pymw.PyMW_Master(interfaces.multicore.MulticoreInterface(1),
                                  loglevel=logging.INFO, delete_files=False,
                                  scheduler_func=lambda tasks, workers: (tasks[0], workers[0]))
    master.shutdown()
    assert issubclass(pymw.TaskException, Exception)
    assert issubclass(pymw.InterfaceException, Exception)
    assert str(pymw.TaskException("x")) == "x"
