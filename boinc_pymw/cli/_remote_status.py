"""``boinc_pymw status --url URL [--batch B]``: this account's batches on a project,
through BOINC's remote submission RPCs (query_batches, query_batch).

A Master's batch may span several BOINC batches ("B", "B#1", ...: see
backends/boinc/remote.py); they are shown as one line each. With
``--batch`` the jobs of batch B are counted by status.
"""

from __future__ import annotations

import time


def add_remote_arguments(parser) -> None:
    parser.add_argument("--url", metavar="URL",
                        help="a BOINC project's URL: list this account's remote batches")
    parser.add_argument("--authenticator", help="account authenticator for --url (default: "
                                                "$BOINC_PYMW_AUTHENTICATOR or the "
                                                "credentials file)")
    parser.add_argument("--credentials", metavar="FILE",
                        help="credentials file (mode 600) holding the authenticator")


def _client(args):
    from ..backends.boinc._credentials import find_authenticator, warn_if_insecure
    from ..backends.boinc._rpc import SubmitClient

    warn_if_insecure(args.url)
    return SubmitClient(args.url, find_authenticator(args.url, args.authenticator,
                                                     args.credentials))


def run_remote(args) -> int:
    from ..backends.boinc._rpc import BoincRpcError
    from ..errors import BoincPymwError
    from .status import format_table

    client = _client(args)
    if args.batch is None:
        batches = client.query_batches()
    else:
        batches, index = [], 0
        while True:
            name = args.batch if index == 0 else f"{args.batch}#{index}"
            try:
                batches.append(client.query_batch(batch_name=name, job_details=True))
            except BoincRpcError as exc:
                if exc.message != "no such batch":
                    raise
                break
            index += 1
        if not batches:
            raise BoincPymwError(f"no batch named {args.batch!r} on {client.url}")
    rows = []
    for b in batches:
        rows.append({"name": b.name, "id": b.id, "app": b.app_name or "?",
                     "created": time.strftime("%Y-%m-%d %H:%M", time.localtime(b.create_time)),
                     "state": b.state_name, "jobs": b.njobs,
                     "errors": b.nerror_jobs, "done": f"{100.0 * b.fraction_done:.0f}%"})
    print(format_table(rows, [("name", "batch"), ("id", "id"), ("app", "app"),
                              ("created", "created"), ("state", "state"), ("jobs", "jobs"),
                              ("errors", "errors"), ("done", "done")]))
    if args.batch is not None:
        counts: dict = {}
        for b in batches:
            for job in b.jobs:
                counts[job.status or "?"] = counts.get(job.status or "?", 0) + 1
        print(f"\nbatch {args.batch}: " + ", ".join(
            f"{counts.get(s, 0)} {s.replace('_', ' ')}"
            for s in ("done", "error", "in_progress", "queued")))
    return 0
