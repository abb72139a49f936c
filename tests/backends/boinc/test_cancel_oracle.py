"""cancel_workunits does to the database what BOINC's own cancel_jobs
(libsched.so.7, tools/backend_lib.cpp) does, checked side by side."""

import time

from boinc_pymw.backends.boinc import cancel_workunits
from boinc_pymw.local.simulate import create_workunit, result_row
from boinc_pymw.boinc.states import Outcome, ServerState, WuError
from boinc_pymw.boinc.testing import add_app

ORACLE = r"""
// cancel_jobs(min_id, max_id) from BOINC's libsched, on a project's database.
#include <cstdio>
#include <cstdlib>
#include <unistd.h>
#include "boinc_db.h"
#include "sched_config.h"
#include "backend_lib.h"

int main(int argc, char** argv) {
    if (argc != 4 || chdir(argv[1])) return 2;
    if (config.parse_file(argv[1])) return 3;
    if (boinc_db.open(config.db_name, config.db_host, config.db_user, config.db_passwd)) return 4;
    int retval = cancel_jobs(atoi(argv[2]), atoi(argv[3]));
    printf("%d\n", retval);
    return retval ? 5 : 0;
}
"""

# result states of one workunit before cancelling (those both BOINC versions treat alike)
STATES = [(ServerState.UNSENT, Outcome.INIT), (ServerState.IN_PROGRESS, Outcome.INIT),
          (ServerState.OVER, Outcome.SUCCESS), (ServerState.OVER, Outcome.CLIENT_ERROR)]


def make_group(project, app_id, prefix, n=3):
    ids = []
    for i in range(n):
        wu_id = create_workunit(project, app_id, f"{prefix}_{i}", error_mask=i % 2)
        wu = project.db.query_one("SELECT * FROM workunit WHERE id=%s", (wu_id,))
        project.db.insert_many("result", [
            result_row(wu, seq, server_state=int(s), outcome=int(o))
            for seq, (s, o) in enumerate(STATES)])
        ids.append(wu_id)
    return ids


def snapshot(db, wu_ids):
    wus = db.query(f"SELECT id, error_mask, transition_time FROM workunit WHERE id IN "
                   f"({', '.join(['%s'] * len(wu_ids))}) ORDER BY id", tuple(wu_ids))
    out = []
    for wu in wus:
        results = db.query("SELECT server_state, outcome FROM result WHERE workunitid=%s "
                           "ORDER BY id", (wu["id"],))
        out.append((wu["error_mask"], [(r["server_state"], r["outcome"]) for r in results]))
    return out, [wu["transition_time"] for wu in wus]


def test_cancel_matches_libsched_cancel_jobs(boinc_project):
    from oracle.build import build_oracle, run_oracle

    exe = build_oracle("cancel_jobs_oracle", ORACLE)
    p = boinc_project
    app_id = add_app(p, "cancelapp")
    theirs = make_group(p, app_id, "theirs")
    ours = make_group(p, app_id, "ours")
    before = int(time.time())
    assert run_oracle(exe, p.path, str(min(theirs)), str(max(theirs))).strip() == "0"
    assert cancel_workunits(p.db, ours) == len(ours)
    after = int(time.time())
    their_state, their_times = snapshot(p.db, theirs)
    our_state, our_times = snapshot(p.db, ours)
    assert our_state == their_state
    assert all(before <= t <= after for t in their_times + our_times)
    # and what that means: CANCELLED set, unsent results not needed, others untouched
    assert all(mask & WuError.CANCELLED for mask, _ in our_state)
    assert our_state[0][1] == [(ServerState.OVER, Outcome.DIDNT_NEED)] + [
        (int(s), int(o)) for s, o in STATES[1:]]
