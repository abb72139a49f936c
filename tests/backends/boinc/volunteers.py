"""BOINC's server and its volunteers, played on the test database.

``Volunteers`` drives every workunit of an app through BOINC's life with
the daemons' simulate helpers (transitioner, scheduler, client bookkeeping)
and the real server-side daemons (numeric validator, result-store
assimilator), while each result is really computed: its input file is taken
from the download hierarchy and run in a BOINC slot through the launcher
and the portable interpreter (boinc_pymw.local.slots), as a volunteer's
client would.
"""

from __future__ import annotations

import itertools

from boinc_pymw.backends.boinc.local import parse_output_template, result_xml_doc_in
from boinc_pymw.boinc.output_files import safe_xml
from boinc_pymw.local.simulate import Client, Scheduler, Transitioner
from boinc_pymw.local.slots import SlotFile, SlotJob, SlotRunner, client_stderr_out
from boinc_pymw.boinc.states import AssimilateState, ServerState
from boinc_pymw.daemons.numeric_validator import NumericValidator
from boinc_pymw.daemons.result_store import ResultStoreAssimilator


class Volunteers:
    def __init__(self, project, app_name, app_id, host_ids, app_version, client_dir):
        self.project = project
        self.db = project.db
        self.app_name = app_name
        self.app_id = app_id
        self.host_ids = host_ids
        self.main, self.app_files = app_version
        self.runner = SlotRunner(client_dir)
        self.transitioner = Transitioner(project)
        self.scheduler = Scheduler(project)
        self._hosts = itertools.cycle(host_ids)
        with open(f"{project.path}/templates/{app_name}_out") as f:
            self.output_refs = parse_output_template(f.read())
        self.computed = []        # result names, in the order they ran

    def open_workunits(self) -> list[dict]:
        return self.db.query("SELECT * FROM workunit WHERE appid=%s AND assimilate_state<%s "
                             "ORDER BY id", (self.app_id, int(AssimilateState.DONE)))

    def _transition_all(self, wus):
        for wu in wus:
            self.transitioner.transition(wu["id"])
            # the real transitioner fills xml_doc_in from the WU's result template
            for r in self.db.query("SELECT id, name FROM result WHERE workunitid=%s AND "
                                   "server_state=%s", (wu["id"], int(ServerState.UNSENT))):
                physical = [f"{r['name']}_r1_{n}" for n in range(len(self.output_refs))]
                self.db.execute("UPDATE result SET xml_doc_in=%s WHERE id=%s",
                                (result_xml_doc_in(r["name"], self.output_refs, physical),
                                 r["id"]))

    def compute(self, wu: dict, result: dict) -> None:
        """What a volunteer's client does with one result."""
        root = safe_xml(wu["xml_doc"], wrap=True)
        inputs = []
        for ref in root.iterfind("workunit/file_ref"):
            phys = ref.findtext("file_name")
            inputs.append(SlotFile(phys, self.project.download_path(phys),
                                   ref.findtext("open_name"),
                                   copy_file=ref.find("copy_file") is not None))
        doc = safe_xml(result["xml_doc_in"], wrap=True)
        outputs = [SlotFile(ref.findtext("file_name"), None, ref.findtext("open_name"))
                   for ref in doc.iterfind("result/file_ref")]
        job = SlotJob(app_name=self.app_name, wu_name=wu["name"], result_name=result["name"],
                      main_program=self.main, app_files=self.app_files, input_files=inputs,
                      output_files=outputs)
        outcome = self.runner.run(job)
        self.computed.append(result["name"])
        client = Client(self.project, result["host_id"])
        if outcome.success:
            client.succeed(result, [outcome.outputs[o.physical_name].read_bytes()
                                    for o in outputs])
        else:
            client.fail(result, exit_status=outcome.exit_status)
        self.db.execute("UPDATE result SET stderr_out=%s WHERE id=%s",
                        (client_stderr_out(outcome), result["id"]))

    def run_daemons(self) -> None:
        for cls in (NumericValidator, ResultStoreAssimilator):
            options = cls.parse_args(["--app", self.app_name, "--one_pass"])
            assert cls(options, project=self.project).run() == 0

    def step(self, limit=None) -> int:
        """One round: results created, sent, computed, validated, assimilated.

        ``limit`` caps how many workunits get results computed this round.
        Returns how many workunits are still open afterwards.
        """
        wus = self.open_workunits()
        self._transition_all(wus)
        for wu in wus[:limit] if limit is not None else wus:
            for r in self.db.query("SELECT id FROM result WHERE workunitid=%s AND "
                                   "server_state=%s ORDER BY id",
                                   (wu["id"], int(ServerState.UNSENT))):
                sent = self.scheduler.send(wu["id"], next(self._hosts))
                sent["host_id"] = sent["hostid"]
                self.compute(wu, sent)
        self._transition_all(self.open_workunits())
        self.run_daemons()
        self._transition_all(self.open_workunits())
        self.run_daemons()
        return len(self.open_workunits())

    def run_until_done(self, rounds=10) -> None:
        for _ in range(rounds):
            if self.step() == 0:
                return
        raise AssertionError(f"workunits still open after {rounds} rounds: "
                             f"{[w['name'] for w in self.open_workunits()]}")
