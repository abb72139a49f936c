"""``boinc_pymw status [--batch B]``: batches of Master runs and how far they are.

One line per batch (workunits done, failed, pending; results sent and
waiting), from the project database. With ``--batch`` only that batch, plus
a line per workunit state so a stuck batch shows where it is stuck.
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
        row["pending"] = row["workunits"] - row["done"] - row["failed"]
    return rows


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
    from ..boinc.project import Project
    from ..errors import BoincPymwError

    project = Project(args.project)
    try:
        rows = batch_summaries(project.db, args.batch)
        if args.batch is not None and not rows:
            raise BoincPymwError(f"no batch named {args.batch!r} in database "
                                 f"{project.config.db_name!r}")
        for row in rows:
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
                res = project.db.query_one(RESULTS_SQL, (row["id"],))
                print(f"\nbatch {row['name']} (id {row['id']}): {row['validated']} workunits "
                      f"validated, waiting for the assimilator; results: "
                      f"{int(res['unsent'])} unsent, {int(res['in_progress'])} in progress, "
                      f"{int(res['reported'])} reported, {int(res['errors'])} errors")
    finally:
        project.close()
    return 0
