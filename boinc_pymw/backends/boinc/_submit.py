"""Creating the workunits of a Master's batch with the toolkit's create-work.

Each call is one workunit ``<batch>_<n>`` with one input file
``<batch>_<n>.json`` (staged from bytes into the download hierarchy), the
app's own templates (``templates/<app>_in`` and ``_out``, as install-app
writes them) and the Master's batch id. A call of ``submit_task(...,
data_files=...)`` has one more input file per data file, named by content
(see ``_data_files``), and its own input template: the app's, plus those
files. The workunits of one ``submit`` are one ``Project.create_batch`` call
joining the Master's existing batch row (templates parsed once, files staged
before their rows, multi-row INSERTs, the batch's njobs grown, all in one
transaction): a failure leaves none of them half-made.
"""

from __future__ import annotations

import os
from typing import Sequence

from . import _data_files
from .calls import encode_input, input_file_name


class CallInput(bytes):
    """The input document of one call, carrying the call's data files
    (``_data_files.DataInput``) to ``create_workunits``."""

    data_files: tuple = ()


def call_input(project, app_name: str, wu_fields: dict, fn, args, kwargs,
               files: Sequence) -> CallInput:
    """The input of a call with data files: checked against the app's templates
    (names its own files use, its disk bound) before anything is staged."""
    from ...templates import template_paths
    from ...worker import encode_task

    data = CallInput(encode_input(encode_task(fn, args, kwargs)))
    in_path, out_path = template_paths(project.path, app_name)
    with open(in_path, encoding="utf-8") as f:
        in_text = f.read()
    with open(out_path, encoding="utf-8") as f:
        out_text = f.read()
    reserved = _data_files.open_names(in_text) | _data_files.open_names(out_text)
    data.data_files = _data_files.data_inputs(files, reserved)
    _data_files.check_disk_bound(data.data_files, wu_fields.get("rsc_disk_bound")
                                 or _data_files.disk_bound_of(in_text))
    return data


def _job_files(project, name: str, data: bytes) -> list:
    """The files of one workunit: its input document, then its data files (a data
    file already in the download hierarchy is not read again)."""
    files = [(input_file_name(name), bytes(data))]
    for d in getattr(data, "data_files", ()):
        if os.path.isfile(project.download_path(d.physical_name)):
            files.append(d.physical_name)
            continue
        if _data_files.MD5.md5(d.path)[0] != d.md5:
            raise _data_files.DataFileError(f"data file {d.path} changed while it was being "
                                            f"submitted; submit the task again")
        files.append((d.physical_name, d.path))
    return files


def create_workunits(project, app: dict, app_name: str, batch_id: int,
                     jobs: Sequence[tuple[str, bytes]], wu_fields: dict) -> dict[str, int]:
    """Create one workunit per ``(name, input bytes)`` in batch ``batch_id`` (whose
    njobs grows by ``len(jobs)``); returns name -> id."""
    from ...boinc.create_work import Job
    from ...templates import template_paths

    app_template = None
    built = []
    for name, data in jobs:
        template = None
        if getattr(data, "data_files", ()):
            if app_template is None:
                with open(template_paths(project.path, app_name)[0], encoding="utf-8") as f:
                    app_template = f.read()
            template = _data_files.input_template_with(app_template, data.data_files)
        built.append(Job(app=app, files=_job_files(project, name, data), name=name,
                         input_template=template, fields=dict(wu_fields)))
    result = project.create_batch(built, batch_id=batch_id)
    return {name: wu_id for (name, _data), wu_id in zip(jobs, result.workunit_ids)}
