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
    from ...worker import encode_task

    data = CallInput(encode_input(encode_task(fn, args, kwargs)))
    _in_text, reserved, disk_bound = app_templates(project, app_name)
    data.data_files = _data_files.data_inputs(files, reserved)
    _data_files.check_disk_bound(data.data_files, wu_fields.get("rsc_disk_bound") or disk_bound)
    return data


#: (template paths) -> (their stat keys, what app_templates returns)
_TEMPLATES: dict = {}


def app_templates(project, app_name: str) -> tuple:
    """(input template text, open names both templates use, the input template's
    disk bound) of the app, read again only when a template file changes: a
    loop of submit_task(data_files=...) would otherwise read both per call."""
    from ...templates import template_paths

    paths = template_paths(project.path, app_name)
    stats = tuple((st.st_mtime_ns, st.st_size, st.st_ino) for st in map(os.stat, paths))
    cached = _TEMPLATES.get(paths)
    if cached is not None and cached[0] == stats:
        return cached[1]
    texts = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            texts.append(f.read())
    in_text, out_text = texts
    reserved = (_data_files.open_names(in_text, "input_template", paths[0])
                | _data_files.open_names(out_text, "output_template", paths[1]))
    found = (in_text, frozenset(reserved), _data_files.disk_bound_of(in_text))
    _TEMPLATES[paths] = (stats, found)
    return found


def _job_files(project, name: str, data: bytes, checked: set) -> list:
    """The files of one workunit: its input document, then its data files (a data
    file already in the download hierarchy, or ``checked`` for an earlier job of
    this batch, is not read again)."""
    files = [(input_file_name(name), bytes(data))]
    for d in getattr(data, "data_files", ()):
        if d.physical_name in checked:
            files.append((d.physical_name, d.path))     # staged with this batch
            continue
        if os.path.isfile(project.download_path(d.physical_name)):
            files.append(d.physical_name)
            continue
        checked.add(d.physical_name)
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

    built, checked = [], set()
    for name, data in jobs:
        template = None
        if getattr(data, "data_files", ()):
            template = _data_files.input_template_with(app_templates(project, app_name)[0],
                                                       data.data_files)
        built.append(Job(app=app, files=_job_files(project, name, data, checked), name=name,
                         input_template=template, fields=dict(wu_fields)))
    result = project.create_batch(built, batch_id=batch_id)
    return {name: wu_id for (name, _data), wu_id in zip(jobs, result.workunit_ids)}
