"""``boinc_pymw results --batch B``: a batch's results as JSON lines.

One line per finished workunit, in call order::

    {"workunit": "B_0", "index": 0, "ok": true, "value": 4}
    {"workunit": "B_1", "index": 1, "ok": false, "error": {"type": "ValueError", "message": "..."}}

``ok: false`` is a task that raised, or a workunit that failed in BOINC
(``"type": "WorkunitFailed"``, with BOINC's error in words). Pending
workunits are left out (``--all`` lists them with ``"pending": true``).
Results are read from the assimilator's results store as untrusted JSON;
workunits whose rows BOINC's db_purge removed are listed from the store.

``--workdir DIR`` reads a local debug run (``-i boinc-local``) instead of a
project.
"""

from __future__ import annotations

import json
import sys

COMMAND = "results"
HELP = "export the results of a batch as JSON lines"


def add_arguments(parser) -> None:
    parser.add_argument("--batch", required=True, metavar="NAME", help="batch name")
    parser.add_argument("-p", "--project", metavar="DIR",
                        help="project directory (default: $BOINC_PROJECT_DIR, '.', '..')")
    parser.add_argument("--results-dir", metavar="DIR",
                        help="results store of the assimilator (default: the project's)")
    parser.add_argument("--workdir", metavar="DIR",
                        help="read a local debug run (-i boinc-local) kept in DIR")
    parser.add_argument("--all", action="store_true", help="also list pending workunits")
    parser.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")


def _index(name: str, batch: str) -> int:
    tail = name[len(batch) + 1:]
    return int(tail) if tail.isdigit() else -1


def result_line(name: str, batch: str, record) -> dict:
    """One JSON-lines entry for a store record (None: pending)."""
    from ..backends.boinc.results_store import StoreError, record_failure, record_output

    line = {"workunit": name, "index": _index(name, batch)}
    if record is None:
        line["pending"] = True
        return line
    failure = record_failure(record)
    if failure is not None:
        mask, reason = failure
        line.update(ok=False, error={"type": "WorkunitFailed", "message": reason,
                                     "error_mask": mask})
        return line
    try:
        document = record_output(record)
    except StoreError as exc:
        line.update(ok=False, error={"type": "StoreError", "message": str(exc)})
        return line
    if isinstance(document, dict) and document.get("ok") is True and "value" in document:
        line.update(ok=True, value=document["value"])
    elif isinstance(document, dict) and document.get("ok") is False:
        err = document.get("error") if isinstance(document.get("error"), dict) else {}
        line.update(ok=False, error={"type": str(err.get("type", "Exception")),
                                     "message": str(err.get("message", ""))})
    else:
        line.update(ok=False, error={"type": "JobFormatError",
                                     "message": "the output is not a worker output document"})
    return line


def _local_names(workdir, batch):
    from pathlib import Path

    download = Path(workdir) / "download"
    names = [p.name[:-len(".json")] for p in download.glob(f"{batch}_*.json")
             if _index(p.name[:-len(".json")], batch) >= 0]
    return sorted(names, key=lambda n: _index(n, batch))


def run(args) -> int:
    from pathlib import Path

    from ..backends.boinc.results_store import batch_group
    from ..backends.boinc.results_store import ResultsStore
    from ..backends.boinc.local import LOCAL_BATCH_ID
    from ..errors import BoincPymwError

    if args.workdir:
        workdir = Path(args.workdir)
        if not (workdir / "download").is_dir():
            raise BoincPymwError(f"{workdir} is not the workdir of a local debug run")
        store = ResultsStore(args.results_dir or workdir / "results_store",
                             batch_group(LOCAL_BATCH_ID))
        names = _local_names(workdir, args.batch)
    else:
        from ..backends.boinc.results_store import configured_store_dir
        from ..backends.boinc import find_batch
        from ..boinc.project import Project

        project = Project(args.project)
        try:
            batch = find_batch(project.db, args.batch)
            if batch is None:
                raise BoincPymwError(f"no batch named {args.batch!r} in database "
                                     f"{project.config.db_name!r}")
            rows = project.db.query("SELECT name FROM workunit WHERE batch=%s", (batch["id"],))
            app = project.db.query_one("SELECT name FROM app WHERE id=%s", (batch["app_id"],))
        finally:
            project.close()
        directory = args.results_dir or configured_store_dir(
            project, app["name"] if app else "")[0]
        store = ResultsStore(directory, batch_group(batch["id"]))
        # rows removed by db_purge leave their records in the store: list both
        names = sorted({r["name"] for r in rows} | set(store.names()),
                       key=lambda n: _index(n, args.batch))
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
    try:
        for name in names:
            record = store.record(name)
            if record is None and not args.all:
                continue
            out.write(json.dumps(result_line(name, args.batch, record)) + "\n")
    finally:
        if out is not sys.stdout:
            out.close()
    return 0
