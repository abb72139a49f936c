"""BOINC's server and volunteers at a fixed rate, for the back end's big tests and benchmark.

``SimulatedServer.finish(n)`` does, for the n oldest unfinished workunits of
an app, what the transitioner, scheduler, volunteers and validator would:
one result per workunit, reported and valid, its output (the worker's JSON
document for the call the input names, computed here) in the upload
hierarchy, the canonical result set and the workunit READY to assimilate;
then the real result-store assimilator runs one pass over them. Rows go in
with multi-row statements, so thousands of workunits per second are
possible; the assimilator is the real one, so the Master reads what it
would read in a project.

The input's function is imported and called here: this is test code
running the test suite's own task functions, never volunteers' data.
"""

from __future__ import annotations

import importlib
import json
import os
import time
import traceback

from concurrent.futures import ThreadPoolExecutor

from boinc_pymw.boinc.output_files import parse_file_refs
from boinc_pymw.boinc.project_files import make_project_dir
from boinc_pymw.boinc.states import AssimilateState, ClientState, Outcome, ServerState, \
    ValidateState
from boinc_pymw.daemons.result_store import ResultStoreAssimilator
from boinc_pymw.local.simulate import result_row, result_xml_doc_in

#: threads running calls and writing their uploads
UPLOAD_THREADS = 4
#: the worker's output file, as install-app's result template names it
OUTPUT_OPEN_NAME = "output.json"


def compute(document: dict) -> bytes:
    """The worker output for one job document (ok/value or ok=false/error)."""
    module, _, name = document["function"].partition(":")
    fn = importlib.import_module(module)
    for part in name.split("."):
        fn = getattr(fn, part)
    try:
        out = {"ok": True, "value": fn(*document.get("args", ()), **document.get("kwargs", {}))}
    except Exception as exc:  # noqa: BLE001 - the task's error goes in its output
        out = {"ok": False, "error": {"type": type(exc).__name__, "message": str(exc),
                                      "traceback": traceback.format_exc()}}
    return json.dumps(out).encode()


def _xml_doc_in(result_name: str) -> str:
    """A result's xml_doc_in with the app's one output, ``output.json``."""
    xml, _names = result_xml_doc_in(result_name)
    return xml.replace("<open_name>out0</open_name>",
                       f"<open_name>{OUTPUT_OPEN_NAME}</open_name>")


class SimulatedServer:
    def __init__(self, project, app_name: str, app_id: int, store: str | None = None):
        self.project = project
        self.db = project.db
        self.app_id = app_id
        argv = ["--app", app_name, "--one_pass"] + (["--store", str(store)] if store else [])
        self.assimilator = ResultStoreAssimilator(ResultStoreAssimilator.parse_args(argv),
                                                  project=project)
        self.assimilator.app = self.assimilator.lookup_app()
        self.finished = 0
        self._upload_dirs: set = set()

    def finish(self, limit: int) -> int:
        """Finish up to ``limit`` workunits (oldest first); returns how many."""
        db = self.db
        wus = db.query("SELECT id, name, appid, batch FROM workunit WHERE appid=%s AND "
                       "assimilate_state=%s AND canonical_resultid=0 AND error_mask=0 "
                       "ORDER BY id LIMIT %s", (self.app_id, int(AssimilateState.INIT), limit))
        if not wus:
            return 0
        now = int(time.time())
        rows = [result_row(wu, 0, xml_doc_in=_xml_doc_in(f"{wu['name']}_0"),
                           server_state=int(ServerState.OVER),
                           outcome=int(Outcome.SUCCESS),
                           client_state=int(ClientState.FILES_UPLOADED), sent_time=now,
                           received_time=now, validate_state=int(ValidateState.VALID))
                for wu in wus]
        db.insert_many("result", rows)
        ids = [wu["id"] for wu in wus]
        marks = ", ".join(["%s"] * len(ids))
        results = db.query(f"SELECT id, workunitid, xml_doc_in FROM result "
                           f"WHERE workunitid IN ({marks})", tuple(ids))
        by_wu = {wu["id"]: wu for wu in wus}
        jobs = [(by_wu[r["workunitid"]]["name"], parse_file_refs(r["xml_doc_in"]))
                for r in results]
        for _name, refs in jobs:          # directories here: not from several threads
            for ref in refs:
                directory = os.path.dirname(self.project.upload_path(ref["name"]))
                if directory not in self._upload_dirs:
                    make_project_dir(directory)
                    self._upload_dirs.add(directory)
        # the volunteers' work and uploads, a few at a time: file creation waits on
        # the file system's journal, and the waits overlap
        with ThreadPoolExecutor(UPLOAD_THREADS) as pool:
            list(pool.map(self._run_and_upload, jobs))
        cases = " ".join(["WHEN %s THEN %s"] * len(results))
        marks = ", ".join(["%s"] * len(results))
        db.execute(f"UPDATE workunit SET canonical_resultid=CASE id {cases} END, "
                   f"assimilate_state=%s WHERE id IN ({marks})",
                   (*[v for r in results for v in (r["workunitid"], r["id"])],
                    int(AssimilateState.READY), *[r["workunitid"] for r in results]))
        self.assimilator.do_pass()
        self.finished += len(wus)
        return len(wus)

    def _run_and_upload(self, job: tuple) -> None:
        """Run one workunit's call and put its output where the upload handler would."""
        wu_name, refs = job
        with open(self.project.download_path(f"{wu_name}.json"), "rb") as f:
            output = compute(json.loads(f.read()))
        for ref in refs:
            with open(self.project.upload_path(ref["name"]), "wb") as f:
                f.write(output)

    def finish_all(self) -> int:
        total = 0
        while True:
            n = self.finish(1000)
            if not n:
                return total
            total += n
