"""-i boinc-local -p PROJECT: the project's templates and installed app version."""

from pathlib import Path

from boinc_pymw import Master
from boinc_pymw.backends.boinc._local_app import launcher, portable_runtime
from boinc_pymw.boinc.app_install import install_app
from boinc_pymw.templates import write_app_templates

from . import tasks

HERE = Path(__file__).resolve().parent


def test_local_mode_runs_the_installed_app_version(boinc_project, local_cache, tmp_path):
    p = boinc_project
    write_app_templates(p, "projapp", inputs=["input.json"], outputs=["output.json"],
                        min_quorum=3, target_nresults=3)
    install_app(p, "projapp", "1.02", code=[HERE.parent], interpreter=portable_runtime(local_cache),
                unsigned=True, launchers={"x86_64-pc-linux-gnu": launcher(local_cache)})
    with Master(interface="boinc-local", project=p.path, app="projapp", workers=2,
                batch="proj", workdir=str(tmp_path / "w"), cache_dir=str(local_cache)) as m:
        assert list(m.map(tasks.add, [20], [22])) == [42]
        status = m.get_status()
    assert status["min_quorum"] == 3 and status["target_nresults"] == 3
    # the portable runtime needs glibc 2.36: installed under plan class glibc2_36
    installed = {f.name for f in (Path(p.path) / "apps" / "projapp" / "1.02"
                                  / "x86_64-pc-linux-gnu__glibc2_36").iterdir()} - {"version.xml"}
    staged = {f.name for f in (tmp_path / "w" / "client" / "projects"
                               / "localhost_boinc-pymw").iterdir()}
    assert {n for n in installed if not n.endswith(".sig")} <= staged
    assert len([n for n in staged if n.startswith("proj_0_") and n.endswith("_0")]) == 3
