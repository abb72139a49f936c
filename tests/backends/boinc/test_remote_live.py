"""-i boinc --url against a running BOINC project (skipped unless configured).

Set, for a project whose app NAME ships a function that squares a number::

    BOINC_PYMW_LIVE_URL=http://127.0.0.1/pymwtest/
    BOINC_PYMW_LIVE_APP=NAME
    BOINC_PYMW_LIVE_SQUARE=module:square      # importable here, shipped in the app
    BOINC_PYMW_AUTHENTICATOR=...              # an account allowed to submit to NAME
    BOINC_PYMW_LIVE_TIMEOUT=900               # seconds for volunteers to answer (optional)

The project's clients must be running; the test submits a few small jobs.
"""

from __future__ import annotations

import os

import pytest

from boinc_pymw import Master

URL = os.environ.get("BOINC_PYMW_LIVE_URL")
pytestmark = pytest.mark.skipif(
    not (URL and os.environ.get("BOINC_PYMW_LIVE_APP")
         and os.environ.get("BOINC_PYMW_LIVE_SQUARE")
         and os.environ.get("BOINC_PYMW_AUTHENTICATOR")),
    reason="set BOINC_PYMW_LIVE_URL, _APP, _SQUARE and BOINC_PYMW_AUTHENTICATOR "
           "to run against a live project")


def _square():
    from boinc_pymw.worker.codec import resolve_reference

    return resolve_reference(os.environ["BOINC_PYMW_LIVE_SQUARE"])


def test_live_map_reattach_and_refusal(capsys):
    from boinc_pymw.backends.boinc._app_check import SubmissionRefused
    from boinc_pymw.cli import main

    timeout = float(os.environ.get("BOINC_PYMW_LIVE_TIMEOUT", "900"))
    app = os.environ["BOINC_PYMW_LIVE_APP"]
    square = _square()
    with Master(interface="boinc", url=URL, app=app, keep_batch=True,
                poll_interval=3.0, max_poll_interval=10.0) as m:
        assert list(m.map(square, range(3), timeout=timeout)) == [0, 1, 4]
        with pytest.raises(SubmissionRefused, match="is refused"):
            m.submit(_square).result(timeout=60)       # this test module is not shipped
        batch = m.backend.batch
    with Master(interface="boinc", url=URL, app=app, batch=batch,
                poll_interval=3.0) as again:
        assert list(again.map(square, range(3), timeout=120)) == [0, 1, 4]
        assert again.backend.reattached
    assert again.backend.retired
    assert main(["status", "--url", URL]) == 0
    assert batch not in capsys.readouterr().out       # retired batches are not listed
