"""``boinc_pymw status [--batch B]``: batches of Master runs and how far they are.

One line per batch (workunits done, failed, pending; results sent and
waiting), from the project database; workunits whose rows BOINC's db_purge
removed are counted from the results store. A batch whose workunits are all
assimilated is marked complete first, as BOINC's own batch pages do
(``get_batch_params``). Then each daemon of the batches' apps (config.xml
entries given ``--app``), running or not. With ``--batch`` only that batch,
plus a line per workunit state so a stuck batch shows where it is stuck.
"""

from __future__ import annotations

import time

COMMAND = "status"
HELP = "show batches submitted by Masters (-i boinc) and their progress"

SUMMARY_SQL = """
SELECT b.id, b.name, b.state, b.create_time, b.njobs, COALESCE(a.name, '?') AS app,
       COUNT(w.id) AS workunits,
       COALESCE(SUM(w.assimilate_state = 2 AND w.error_mask = 0), 0) AS done,
       COALESCE(SUM(w.error_mask <> 0), 0) AS failed,
       COALESCE(SUM(w.canonical_resultid <> 0 AND w.assimilate_state <> 2), 0) AS validated
FROM batch b LEFT JOIN app a ON a.id = b.app_id LEFT JOIN workunit w ON w.batch = b.id
{where}
GROUP BY b.id, b.name, b.state, b.create_time, b.njobs, a.name
ORDER BY b.id
"""

RESULTS_SQL = """
SELECT COALESCE(SUM(r.server_state = 2), 0) AS unsent,
       COALESCE(SUM(r.server_state = 4), 0) AS in_progress,
       COALESCE(SUM(r.server_state = 5 AND r.outcome = 1), 0) AS reported,
       COALESCE(SUM(r.server_state = 5 AND r.outcome NOT IN (1, 5)), 0) AS errors
FROM result r JOIN workunit w ON w.id = r.workunitid WHERE w.batch = %s
"""

BATCH_STATES = {0: "init", 1: "in progress", 2: "complete", 3: "aborted", 4: "retired"}


def add_arguments(parser) -> None:
    parser.add_argument("-p", "--project", metavar="DIR",
                        help="project directory (default: $BOINC_PROJECT_DIR, '.', '..')")
    parser.add_argument("--batch", metavar="NAME", help="only this batch, in more detail")
    from ._remote_status import add_remote_arguments

    add_remote_arguments(parser)       # --url: the account's batches on a remote project


def batch_summaries(db, batch: str | None = None) -> list[dict]:
    where, params = "", ()
    if batch is not None:
        where, params = "WHERE b.name = %s", (batch,)
    rows = db.query(SUMMARY_SQL.format(where=where), params)
    for row in rows:
        for key in ("workunits", "done", "failed", "validated"):
            row[key] = int(row[key] or 0)
        row["purged"] = max(0, int(row["njobs"] or 0) - row["workunits"])
        row["pending"] = row["workunits"] - row["done"] - row["failed"]
    return rows


def count_purged(db, project, row: dict) -> None:
    """Add the batch's workunits that db_purge removed to done/failed, from the
    results store (a purged workunit was assimilated, so it has a record)."""
    from ..backends.boinc.results_store import ResultsStore, batch_group, configured_store_dir

    if not row["purged"]:
        return
    store = ResultsStore(configured_store_dir(project, row["app"])[0], batch_group(row["id"]))
    present = {r["name"] for r in db.query("SELECT name FROM workunit WHERE batch=%s",
                                           (row["id"],))}
    done = failed = 0
    for name in store.names():
        if name in present:
            continue
        try:
            record = store.record(name)
        except Exception:  # noqa: BLE001 - an unusable record is a failed call
            record = None
        if record is not None and record.get("status") == "done":
            done += 1
        else:
            failed += 1
    row["done"] += done
    row["failed"] += failed
    row["workunits"] += done + failed
    row["purged_unknown"] = row["purged"] - done - failed


def daemon_lines(project, apps) -> list[str]:
    """One line per daemon of each app: running or not (see daemon_watch)."""
    from ..backends.boinc.daemon_watch import app_daemons

    lines = []
    for app in apps:
        states = app_daemons(project, app, lines=3)
        if not states:
            lines.append(f"app {app}: config.xml lists no daemon for it (a validator and "
                         f"the result_store assimilator are needed)")
            continue
        for state in states:
            lines.append(f"app {app}: {state.program} {state.state}")
            if state.running is False and not state.disabled:
                lines += [f"    {line}" for line in state.last_lines]
    return lines


def format_table(rows: list[dict], columns: list[tuple[str, str]]) -> str:
    cells = [[title for _key, title in columns]]
    cells += [[str(row[key]) for key, _title in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip()
                     for line in cells)


def run(args) -> int:
    if getattr(args, "url", None):
        from ._remote_status import run_remote

        return run_remote(args)
    from ..backends.boinc.server import BATCH_STATE_IN_PROGRESS, update_batch_state
    from ..boinc.project import Project
    from ..errors import BoincPymwError

    project = Project(args.project)
    try:
        db = project.db
        rows = batch_summaries(db, args.batch)
        if args.batch is not None and not rows:
            raise BoincPymwError(f"no batch named {args.batch!r} in database "
                                 f"{project.config.db_name!r}")
        for row in rows:
            if row["state"] == BATCH_STATE_IN_PROGRESS:
                row["state"] = update_batch_state(db, row["id"])["state"]
            count_purged(db, project, row)
            row["pending"] = row["workunits"] - row["done"] - row["failed"]
            row["state"] = BATCH_STATES.get(row["state"], str(row["state"]))
            row["created"] = time.strftime("%Y-%m-%d %H:%M", time.localtime(row["create_time"]))
            total = row["workunits"] or 1
            row["progress"] = f"{100.0 * (row['done'] + row['failed']) / total:.0f}%"
        print(format_table(rows, [("name", "batch"), ("app", "app"), ("created", "created"),
                                  ("state", "state"), ("workunits", "workunits"),
                                  ("done", "done"), ("failed", "failed"),
                                  ("pending", "pending"), ("progress", "progress")]))
        if args.batch is not None:
            for row in rows:
                res = db.query_one(RESULTS_SQL, (row["id"],))
                purged = f", {row['purged']} purged by db_purge" if row["purged"] else ""
                print(f"\nbatch {row['name']} (id {row['id']}): {row['validated']} workunits "
                      f"validated, waiting for the assimilator; results: "
                      f"{int(res['unsent'])} unsent, {int(res['in_progress'])} in progress, "
                      f"{int(res['reported'])} reported, {int(res['errors'])} errors{purged}")
        apps = sorted({row["app"] for row in rows if row["app"] != "?"})
        if apps:
            print("\ndaemons:")
            print("\n".join(daemon_lines(project, apps)))
    finally:
        project.close()
    return 0
