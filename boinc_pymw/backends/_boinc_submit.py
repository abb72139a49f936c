"""Creating the workunits of a Master's batch with the toolkit's create-work.

Each call is one workunit ``<batch>_<n>`` with one input file
``<batch>_<n>.json`` (staged from bytes into the download hierarchy), the
app's own templates (``templates/<app>_in`` and ``_out``, as install-app
writes them) and the Master's batch id. All workunits of one ``submit``
land in one transaction: a failure leaves none of them half-made.
"""

from __future__ import annotations

from typing import Sequence

from .boinc import input_file_name


def create_workunits(project, app: dict, app_name: str, batch_id: int,
                     jobs: Sequence[tuple[str, bytes]], wu_fields: dict) -> dict[str, int]:
    """Create one workunit per ``(name, input bytes)``; returns name -> id."""
    from ..boinc.create_work import create_work

    ids: dict[str, int] = {}
    with project.db.transaction():
        for name, data in jobs:
            ids[name] = create_work(project, app, [(input_file_name(name), data)],
                                    name=name, batch=batch_id, **wu_fields)
    return ids
