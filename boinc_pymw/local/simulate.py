"""BOINC's other server parts and its client, played on the database for tests.

A validator or assimilator only ever sees database rows and upload files
that BOINC's transitioner, scheduler and client put there. These classes
put them there the same way, so tests (ours and a project's) can drive a
workunit through its life and check the database after each daemon pass::

    wu_id = create_workunit(project, app_id, "wu_1", min_quorum=2, target_nresults=2)
    transitioner = Transitioner(project)
    transitioner.transition(wu_id)                 # creates wu_1_0, wu_1_1 (UNSENT)
    scheduler = Scheduler(project)
    r0 = scheduler.send(wu_id, host_id)            # IN_PROGRESS on that host
    Client(project, host_id).succeed(r0, [b"42\\n"])  # uploads, reports SUCCESS
    transitioner.transition(wu_id)                 # need_validate=1 once quorum is there

Only what the validator/assimilator depend on is modelled (sched/transitioner.cpp
``handle_wu`` for results, errors, need_validate and assimilate_state;
``sched_result.cpp`` for reported results), not deadlines, homogeneous
redundancy or file deletion.
"""

from __future__ import annotations

import random
import time
from typing import Iterable, Optional, Sequence

from ..boinc.states import (AssimilateState, ClientState, Outcome, ServerState, ValidateState,
                     WuError)

DEFAULT_OUTPUT_TEMPLATE = "<file_ref><open_name>out</open_name></file_ref>"


def add_app_version(project, appid: int, platformid: int = 0, version_num: int = 100,
                    **fields) -> int:
    row = {"create_time": int(time.time()), "appid": appid, "version_num": version_num,
           "platformid": platformid, "xml_doc": "", "plan_class": ""}
    row.update(fields)
    return project.db.insert("app_version", row)


def workunit_row(appid: int, name: str, **fields) -> dict:
    """A complete workunit row as create_work writes it (defaults of backend_lib.h)."""
    row = {
        "create_time": int(time.time()), "appid": appid, "name": name,
        "xml_doc": "<workunit></workunit>", "batch": 0, "rsc_fpops_est": 3600e9,
        "rsc_fpops_bound": 86400e9, "rsc_memory_bound": 5e8, "rsc_disk_bound": 1e9,
        "need_validate": 0, "canonical_resultid": 0, "canonical_credit": 0.0,
        "transition_time": int(time.time()), "delay_bound": 7 * 86400, "error_mask": 0,
        "file_delete_state": 0, "assimilate_state": 0, "hr_class": 0, "opaque": 0.0,
        "min_quorum": 1, "target_nresults": 1, "max_error_results": 3,
        "max_total_results": 10, "max_success_results": 6,
        "result_template_file": "templates/app_out", "priority": 0,
        "rsc_bandwidth_bound": 0.0, "fileset_id": 0, "app_version_id": 0,
        "transitioner_flags": 0, "size_class": -1, "keywords": "", "app_version_num": 0,
    }
    unknown = set(fields) - set(row)
    if unknown:
        raise ValueError(f"workunit has no column(s) {sorted(unknown)}")
    row.update(fields)
    return row


def create_workunit(project, appid: int, name: str, **fields) -> int:
    """Insert one workunit (what create_work does); returns its id."""
    return project.db.insert("workunit", workunit_row(appid, name, **fields))


def result_xml_doc_in(result_name: str, n_outputs: int = 1, *, optional: Sequence[int] = (),
                      no_validate: Sequence[int] = (), rand: Optional[int] = None) -> tuple[str, list]:
    """``xml_doc_in`` as process_result_template writes it, and the physical names."""
    rand = random.randrange(1 << 30) if rand is None else rand
    names = [f"{result_name}_r{rand}_{n}" for n in range(n_outputs)]
    infos = "".join(f"<file_info><name>{nm}</name><generated_locally/><upload_when_present/>"
                    f"<max_nbytes>5000000</max_nbytes><url>http://localhost/upload</url></file_info>"
                    for nm in names)
    refs = "".join(
        f"<file_ref><file_name>{nm}</file_name><open_name>out{n}</open_name>"
        + ("<optional/>" if n in optional else "") + ("<no_validate/>" if n in no_validate else "")
        + "</file_ref>" for n, nm in enumerate(names))
    return f"{infos}<result><name>{result_name}</name>{refs}</result>", names


def result_row(wu: dict, seq: int, n_outputs: int = 1, **fields) -> dict:
    name = f"{wu['name']}_{seq}"
    xml, _ = result_xml_doc_in(name, n_outputs)
    row = {
        "create_time": int(time.time()), "workunitid": wu["id"],
        "server_state": int(ServerState.UNSENT), "outcome": int(Outcome.INIT),
        "client_state": 0, "hostid": 0, "userid": 0, "report_deadline": 0, "sent_time": 0,
        "received_time": 0, "name": name, "cpu_time": 0.0, "xml_doc_in": xml,
        "xml_doc_out": "", "stderr_out": "", "batch": wu.get("batch", 0),
        "file_delete_state": 0, "validate_state": int(ValidateState.INIT),
        "claimed_credit": 0.0, "granted_credit": 0.0, "opaque": 0.0,
        "random": random.randrange(1 << 30), "app_version_num": 0, "appid": wu["appid"],
        "exit_status": 0, "teamid": 0, "priority": 0, "elapsed_time": 0.0,
        "flops_estimate": 0.0, "app_version_id": 0, "runtime_outlier": 0,
        "size_class": -1, "peak_working_set_size": 0.0, "peak_swap_size": 0.0,
        "peak_disk_usage": 0.0,
    }
    row.update(fields)
    return row


class Transitioner:
    """Plays sched/transitioner.cpp for one workunit at a time."""

    def __init__(self, project, n_outputs: int = 1):
        self.project = project
        self.db = project.db
        self.n_outputs = n_outputs

    def transition(self, wu_id: int) -> dict:
        """One transitioner visit; returns the updated workunit row."""
        db = self.db
        wu = db.query_one("SELECT * FROM workunit WHERE id=%s", (wu_id,))
        results = db.query("SELECT * FROM result WHERE workunitid=%s ORDER BY id", (wu_id,))
        now = int(time.time())
        over = [r for r in results if r["server_state"] == ServerState.OVER]
        nerror = sum(1 for r in over if r["outcome"] in (
            Outcome.CLIENT_ERROR, Outcome.COULDNT_SEND, Outcome.NO_REPLY,
            Outcome.VALIDATE_ERROR, Outcome.CLIENT_DETACHED))
        nsuccess = sum(1 for r in over if r["outcome"] == Outcome.SUCCESS)
        unchecked = any(r["outcome"] == Outcome.SUCCESS and r["validate_state"] == ValidateState.INIT
                        for r in over)
        nunsent = sum(1 for r in results if r["server_state"] == ServerState.UNSENT)
        ninprogress = sum(1 for r in results if r["server_state"] == ServerState.IN_PROGRESS)
        error_mask = wu["error_mask"]
        if not wu["canonical_resultid"]:
            if nerror > wu["max_error_results"]:
                error_mask |= WuError.TOO_MANY_ERROR_RESULTS
            if len(results) >= wu["max_total_results"] and not error_mask and \
                    nsuccess + nunsent + ninprogress < wu["target_nresults"]:
                error_mask |= WuError.TOO_MANY_TOTAL_RESULTS
        need_validate = wu["need_validate"]
        if unchecked and nsuccess >= wu["min_quorum"] and not error_mask:
            need_validate = 1
        assimilate_state = wu["assimilate_state"]
        if error_mask:
            for r in results:
                if r["server_state"] == ServerState.UNSENT:
                    db.execute("UPDATE result SET server_state=%s, outcome=%s WHERE id=%s",
                               (int(ServerState.OVER), int(Outcome.DIDNT_NEED), r["id"]))
            if assimilate_state == AssimilateState.INIT:
                assimilate_state = AssimilateState.READY
        elif wu["canonical_resultid"]:
            all_over_validated = all(
                r["server_state"] == ServerState.OVER
                and (r["outcome"] != Outcome.SUCCESS or r["validate_state"] != ValidateState.INIT)
                for r in results)
            if assimilate_state == AssimilateState.INIT and all_over_validated:
                assimilate_state = AssimilateState.READY
        else:
            wanted = wu["target_nresults"] - (nsuccess + nunsent + ninprogress)
            rows = [result_row(wu, len(results) + i, self.n_outputs) for i in range(max(0, wanted))]
            if rows:
                db.insert_many("result", rows)
        db.execute("UPDATE workunit SET error_mask=%s, need_validate=%s, assimilate_state=%s, "
                   "transition_time=%s WHERE id=%s",
                   (int(error_mask), need_validate, int(assimilate_state),
                    wu["transition_time"] if wu["transition_time"] > now else now + 86400, wu_id))
        return db.query_one("SELECT * FROM workunit WHERE id=%s", (wu_id,))

    def cancel(self, wu_id: int) -> None:
        """What cancel_jobs does: error_mask CANCELLED, unsent results not needed."""
        self.db.execute("UPDATE workunit SET error_mask=error_mask|%s, transition_time=%s "
                        "WHERE id=%s", (int(WuError.CANCELLED), int(time.time()), wu_id))
        self.transition(wu_id)


class Scheduler:
    """Plays the scheduler: sends a workunit's next unsent result to a host."""

    def __init__(self, project, app_version_id: int = 0, flops_estimate: float = 1e10):
        self.project = project
        self.db = project.db
        self.app_version_id = app_version_id
        self.flops_estimate = flops_estimate

    def send(self, wu_id: int, host_id: int) -> dict:
        r = self.db.query_one("SELECT * FROM result WHERE workunitid=%s AND server_state=%s "
                              "ORDER BY id LIMIT 1", (wu_id, int(ServerState.UNSENT)))
        if r is None:
            raise LookupError(f"workunit {wu_id} has no unsent result")
        host = self.db.query_one("SELECT id, userid FROM host WHERE id=%s", (host_id,))
        user = self.db.query_one("SELECT teamid FROM user WHERE id=%s", (host["userid"],))
        now = int(time.time())
        self.db.execute(
            "UPDATE result SET server_state=%s, hostid=%s, userid=%s, teamid=%s, sent_time=%s, "
            "report_deadline=%s, app_version_id=%s, flops_estimate=%s WHERE id=%s",
            (int(ServerState.IN_PROGRESS), host_id, host["userid"],
             user["teamid"] if user else 0, now - 3600, now + 7 * 86400,
             self.app_version_id, self.flops_estimate, r["id"]))
        return self.db.query_one("SELECT * FROM result WHERE id=%s", (r["id"],))


class Client:
    """Plays a volunteer's client: uploads output files, then reports the result."""

    def __init__(self, project, host_id: int):
        self.project = project
        self.db = project.db
        self.host_id = host_id

    def upload(self, result: dict, outputs: Iterable[Optional[bytes]]) -> list[str]:
        """Write output n's bytes where the upload handler would (None: don't upload)."""
        from ..boinc.output_files import parse_file_refs

        paths = []
        for ref, data in zip(parse_file_refs(result["xml_doc_in"]), outputs):
            path = self.project.upload_path(ref["name"], create=True)
            if data is not None:
                with open(path, "wb") as f:
                    f.write(data)
            paths.append(path)
        return paths

    def succeed(self, result: dict, outputs: Iterable[Optional[bytes]] = (),
                elapsed_time: float = 3600.0, cpu_time: Optional[float] = None) -> None:
        """Upload, then report SUCCESS as sched_result.cpp records it."""
        self.upload(result, outputs)
        self._report(result, ClientState.FILES_UPLOADED, 0, Outcome.SUCCESS,
                     ValidateState.INIT, elapsed_time, cpu_time)

    def fail(self, result: dict, exit_status: int = 1, elapsed_time: float = 60.0) -> None:
        """Report a compute error: CLIENT_ERROR and validate_state INVALID."""
        self._report(result, ClientState.COMPUTE_ERROR, exit_status, Outcome.CLIENT_ERROR,
                     ValidateState.INVALID, elapsed_time, None)

    def _report(self, result, client_state, exit_status, outcome, validate_state, elapsed,
                cpu_time) -> None:
        now = int(time.time())
        self.db.execute(
            "UPDATE result SET server_state=%s, outcome=%s, client_state=%s, exit_status=%s, "
            "validate_state=%s, received_time=%s, elapsed_time=%s, cpu_time=%s WHERE id=%s",
            (int(ServerState.OVER), int(outcome), int(client_state), exit_status,
             int(validate_state), now, elapsed, elapsed if cpu_time is None else cpu_time,
             result["id"]))
        self.db.execute("UPDATE workunit SET transition_time=%s WHERE id=%s",
                        (now, result["workunitid"]))


def run_to_validation(project, appid: int, host_ids: Sequence[int], outputs: Sequence[Sequence[Optional[bytes]]],
                      name: str, *, min_quorum: int, target_nresults: Optional[int] = None,
                      app_version_id: int = 0, n_outputs: int = 1, **wu_fields) -> int:
    """Create a workunit and take its first results through to need_validate.

    ``outputs[i]`` is what the i-th host uploads, or None to make it fail.
    """
    wu_id = create_workunit(project, appid, name, min_quorum=min_quorum,
                            target_nresults=target_nresults or len(host_ids), **wu_fields)
    tr = Transitioner(project, n_outputs)
    tr.transition(wu_id)
    sched = Scheduler(project, app_version_id)
    for host_id, out in zip(host_ids, outputs):
        r = sched.send(wu_id, host_id)
        client = Client(project, host_id)
        if out is None:
            client.fail(r)
        else:
            client.succeed(r, out)
    tr.transition(wu_id)
    return wu_id


def bulk_ready_workunits(project, appid: int, n: int, *, quorum: int, host_ids: Sequence[int],
                         output: bytes = b"42\n", prefix: str = "bulk", for_assimilation=False,
                         app_version_id: int = 0) -> list[int]:
    """``n`` workunits whose ``quorum`` results are reported with identical output.

    With ``for_assimilation`` they are already validated (canonical result set,
    assimilate_state READY). Rows go in with multi-row INSERTs, files are written once each.
    """
    db = project.db
    now = int(time.time())
    wu_rows = [workunit_row(appid, f"{prefix}_{i}", min_quorum=quorum, target_nresults=quorum,
                            need_validate=0 if for_assimilation else 1,
                            assimilate_state=1 if for_assimilation else 0,
                            transition_time=now)
               for i in range(n)]
    db.insert_many("workunit", wu_rows)
    wus = db.query("SELECT id, name, appid, batch FROM workunit WHERE name LIKE %s ORDER BY id",
                   (f"{prefix}\\_%",))
    user_of = {h["id"]: h["userid"] for h in db.query("SELECT id, userid FROM host")}
    rows = []
    for wu in wus:
        for seq in range(quorum):
            host = host_ids[seq % len(host_ids)]
            rows.append(result_row(
                wu, seq, server_state=int(ServerState.OVER), outcome=int(Outcome.SUCCESS),
                client_state=int(ClientState.FILES_UPLOADED), hostid=host, userid=user_of[host],
                sent_time=now - 3600, received_time=now, elapsed_time=3600.0, cpu_time=3600.0,
                flops_estimate=1e10, app_version_id=app_version_id,
                validate_state=int(ValidateState.VALID if for_assimilation else ValidateState.INIT)))
    for start in range(0, len(rows), 2000):
        db.insert_many("result", rows[start:start + 2000])
    from ..boinc.output_files import parse_file_refs

    for r in db.query("SELECT r.name, r.xml_doc_in FROM result r JOIN workunit w "
                      "ON r.workunitid=w.id WHERE w.name LIKE %s", (f"{prefix}\\_%",)):
        for ref in parse_file_refs(r["xml_doc_in"]):
            with open(project.upload_path(ref["name"], create=True), "wb") as f:
                f.write(output)
    if for_assimilation:
        db.execute("UPDATE workunit w SET canonical_resultid=(SELECT min(id) FROM result r "
                   "WHERE r.workunitid=w.id) WHERE w.name LIKE %s", (f"{prefix}\\_%",))
    return [wu["id"] for wu in wus]
