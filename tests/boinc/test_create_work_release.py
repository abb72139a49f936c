"""create-work follows the release of the project at hand (its db_revision file):
server 1.4's replication defaults are 2/2/3/10/6, 1.6's are all 1; a workunit whose
own limits make its quorum unreachable is refused."""

import os

import pytest

from boinc_pymw.boinc.config import ConfigError
from boinc_pymw.boinc.create_work import CreateWorkError
from boinc_pymw.boinc.testing import add_app
from boinc_pymw.cli import main as cli_main
from boinc_pymw.templates import InputFile, write_app_templates

COLS = ("min_quorum", "target_nresults", "max_error_results", "max_total_results",
        "max_success_results")


def _project(boinc_project, revision):
    if revision is not None:
        with open(os.path.join(boinc_project.path, "db_revision"), "w") as f:
            f.write(f"{revision}\n")
    add_app(boinc_project, "sq")
    write_app_templates(boinc_project, "sq", inputs=[InputFile("in")], outputs=["out"])
    return boinc_project


def _numbers(project, wu_id):
    row = project.db.query_one(f"SELECT {', '.join(COLS)} FROM workunit WHERE id=%s", (wu_id,))
    return tuple(row[c] for c in COLS)


@pytest.mark.parametrize("revision, release, expected", [
    (27028, "1.4", (2, 2, 3, 10, 6)),        # 1.4.7 (and 1.0-1.4: none went past 27028)
    (27020, "1.4", (2, 2, 3, 10, 6)),
    (27030, "1.6", (1, 1, 1, 1, 1)),
    (None, "1.6", (1, 1, 1, 1, 1)),          # no db_revision file: the current release's
])
def test_defaults_follow_the_projects_release(boinc_project, revision, release, expected):
    project = _project(boinc_project, revision)
    assert project.server_release == release
    assert project.db_revision == revision
    wu = project.create_work("sq", [("in_1", b"x")], name="wu_1")
    assert _numbers(project, wu) == expected


def test_a_quorum_of_two_on_1_4_keeps_its_error_allowance(boinc_project):
    """The live defect: --min_quorum 2 --target_nresults 2 left max_error_results 1."""
    project = _project(boinc_project, 27028)
    open(os.path.join(project.download_dir, "in_a"), "wb").write(b"a")
    assert cli_main(["create-work", "--project", project.path, "--appname", "sq",
                     "--wu_name", "q2", "--min_quorum", "2", "--target_nresults", "2",
                     "in_a"]) == 0
    row = project.db.query_one("SELECT id FROM workunit WHERE name='q2'")
    assert _numbers(project, row["id"]) == (2, 2, 3, 10, 6)


def test_1_4_refuses_a_target_above_max_success_as_its_create_work_does(boinc_project):
    project = _project(boinc_project, 27028)
    with pytest.raises(CreateWorkError, match="target_nresults=8 exceeds max_success_results=6"):
        project.create_work("sq", [("in_8", b"x")], name="wu_8", target_nresults=8, min_quorum=8)
    assert project.db.query("SELECT id FROM workunit") == []


def test_1_6_raises_default_limits_to_the_target(boinc_project):
    project = _project(boinc_project, 27030)
    wu = project.create_work("sq", [("in_3", b"x")], name="wu_3", min_quorum=2,
                             target_nresults=3)
    assert _numbers(project, wu) == (2, 3, 1, 3, 3)


@pytest.mark.parametrize("revision", [27028, 27030])
@pytest.mark.parametrize("fields, words", [
    ({"target_nresults": 2, "max_total_results": 1}, "max_total_results=1"),
    ({"target_nresults": 3, "min_quorum": 2, "max_success_results": 2}, "max_success_results=2"),
])
def test_explicit_limits_that_make_the_quorum_unreachable_are_refused(boinc_project, revision,
                                                                      fields, words):
    project = _project(boinc_project, revision)
    with pytest.raises(CreateWorkError) as err:
        project.create_work("sq", [("in_x", b"x")], name="wu_x", **fields)
    assert words in str(err.value) and "never" in str(err.value)
    assert project.db.query("SELECT id FROM workunit") == []


def test_unreadable_db_revision_is_a_clear_error(boinc_project):
    project = _project(boinc_project, "twenty")
    with pytest.raises(ConfigError, match="db_revision"):
        project.server_release
