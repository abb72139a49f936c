"""One call <-> one workunit: batch and workunit names, the input document.

Shared by the server back end and ``boinc-local``: a call is encoded as a
JSON job document (``boinc_pymw.worker`` format) in the file
``<batch>_<n>.json``; the code itself comes from the installed app version.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from typing import Any

from ... import names
from ...errors import BoincPymwError
from ..base import WorkItem, run_chunk

_NAME_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def new_batch_name() -> str:
    """A unique, readable batch name (``pymw_<date>_<time>_<random>``)."""
    return time.strftime("pymw_%Y%m%d_%H%M%S_") + secrets.token_hex(3)


def check_batch_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME_OK.match(name):
        raise BoincPymwError(
            f"batch name {name!r}: use 1-100 letters, digits, '_', '.' or '-' "
            f"(it becomes part of workunit and file names)")
    return names.check_batch_name(name)      # the toolkit's rules ('..', '.json', ...)


def workunit_name(batch: str, index: int) -> str:
    return f"{batch}_{index}"


def input_file_name(wu_name: str) -> str:
    return f"{wu_name}.json"


def encode_input(job: dict) -> bytes:
    """The input file's bytes: canonical JSON, so a rerun gives the same bytes."""
    return json.dumps(job, sort_keys=True, separators=(",", ":")).encode()


def encode_call(item: WorkItem) -> dict:
    """The job document of one call; a chunk of calls is refused (one call per workunit)."""
    from ...worker import encode_task

    if item.fn is run_chunk:
        raise BoincPymwError("the BOINC back ends run one call per workunit: "
                             "use map(..., chunksize=1) (the default)")
    return encode_task(item.fn, item.args, item.kwargs)


def changed_input_error(batch: str, name: str, path: Any) -> BoincPymwError:
    """Reattaching: call ``name`` has other input than its workunit's file ``path``."""
    return BoincPymwError(
        f"batch {batch}: call {name.rsplit('_', 1)[1]} differs from the workunit "
        f"{name} submitted before ({path}); use a new batch name, or submit the same "
        f"calls in the same order to reattach")
