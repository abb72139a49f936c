"""Creating the workunits of a Master's batch with the toolkit's create-work.

Each call is one workunit ``<batch>_<n>`` with one input file
``<batch>_<n>.json`` (staged from bytes into the download hierarchy), the
app's own templates (``templates/<app>_in`` and ``_out``, as install-app
writes them) and the Master's batch id. The workunits of one ``submit`` are
prepared like ``Project.create_batch`` prepares them (template parsed once,
files staged first) and inserted with one multi-row INSERT in one
transaction: a failure leaves none of them half-made. Unlike create_batch,
they join the Master's existing batch row.
"""

from __future__ import annotations

import time
from typing import Sequence

from .boinc import input_file_name


def create_workunits(project, app: dict, app_name: str, batch_id: int,
                     jobs: Sequence[tuple[str, bytes]], wu_fields: dict) -> dict[str, int]:
    """Create one workunit per ``(name, input bytes)``; returns name -> id."""
    from ..boinc.create_work import Job, _Context, _prepare

    ctx = _Context(project)
    now = int(time.time())
    rows = [_prepare(ctx, Job(app=app, files=[(input_file_name(name), data)], name=name,
                              fields=dict(wu_fields)), batch_id, now)
            for name, data in jobs]
    db = project.db
    with db.transaction():
        db.insert_many("workunit", rows)
        names = [name for name, _ in jobs]
        ids = {}
        for start in range(0, len(names), 1000):
            chunk = names[start:start + 1000]
            marks = ", ".join(["%s"] * len(chunk))
            for row in db.query(f"SELECT id, name FROM workunit WHERE batch=%s AND name IN "
                                f"({marks})", (batch_id, *chunk)):
                ids[row["name"]] = row["id"]
    return ids
