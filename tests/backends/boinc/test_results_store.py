"""The Master's read side of the results store: volunteer data, read with care."""

import json
import os

import pytest

from boinc_pymw.backends.boinc.outcomes import outcome_from_record
from boinc_pymw.backends.boinc.results_store import ResultsStore, StoreError


def record(group, name, outputs, status="done"):
    (group / f"{name}.json").write_text(json.dumps(
        {"format": 1, "status": status, "wu_name": name, "outputs": outputs}))


@pytest.fixture
def store(tmp_path):
    group = tmp_path / "batch_1"
    (group / "w").mkdir(parents=True)
    (group / "w" / "output.json").write_text(json.dumps({"ok": True, "value": 7}))
    return ResultsStore(tmp_path, "batch_1"), group


def test_file_and_inline_outputs(store):
    st, group = store
    record(group, "w", [{"open_name": "output.json", "file": "w/output.json"}])
    record(group, "i", [{"open_name": "output.json", "file": None,
                         "inline": json.dumps({"ok": True, "value": [1, 2]})}])
    assert outcome_from_record(st.record("w")) == (True, 7)
    assert outcome_from_record(st.record("i")) == (True, [1, 2])
    assert st.record("missing") is None
    assert st.names() == ["i", "w"]


def test_hostile_store_entries_are_clear_errors(store, tmp_path):
    st, group = store
    os.mkfifo(group / "fifo.json")                        # would block a plain open()
    with pytest.raises(StoreError, match="not a regular file"):
        st.record("fifo")
    (tmp_path / "secret").write_text(json.dumps({"ok": True, "value": "secret"}))
    os.symlink(tmp_path / "secret", group / "w" / "link.json")
    for name, path in (("up", "../secret"), ("abs", str(tmp_path / "secret")),
                       ("link", "w/link.json")):
        record(group, name, [{"open_name": "output.json", "file": path}])
        ok, error = outcome_from_record(st.record(name))
        assert not ok and isinstance(error, StoreError), (name, error)
    (group / "big.json").write_bytes(b" " * (16 * 1024 * 1024 + 1))
    with pytest.raises(StoreError, match="larger than"):
        st.record("big")
