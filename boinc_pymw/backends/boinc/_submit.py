"""Creating the workunits of a Master's batch with the toolkit's create-work.

Each call is one workunit ``<batch>_<n>`` with one input file
``<batch>_<n>.json`` (staged from bytes into the download hierarchy), the
app's own templates (``templates/<app>_in`` and ``_out``, as install-app
writes them) and the Master's batch id. The workunits of one ``submit`` are
one ``Project.create_batch`` call joining the Master's existing batch row
(template parsed once, files staged before their rows, multi-row INSERTs,
the batch's njobs grown, all in one transaction): a failure leaves none of
them half-made.
"""

from __future__ import annotations

from typing import Sequence

from .calls import input_file_name


def create_workunits(project, app: dict, app_name: str, batch_id: int,
                     jobs: Sequence[tuple[str, bytes]], wu_fields: dict) -> dict[str, int]:
    """Create one workunit per ``(name, input bytes)`` in batch ``batch_id`` (whose
    njobs grows by ``len(jobs)``); returns name -> id."""
    from ...boinc.create_work import Job

    result = project.create_batch(
        [Job(app=app, files=[(input_file_name(name), data)], name=name, fields=dict(wu_fields))
         for name, data in jobs], batch_id=batch_id)
    return {name: wu_id for (name, _data), wu_id in zip(jobs, result.workunit_ids)}
