"""A stand-in for a BOINC 1.4.7 project's web side, on the test database.

It answers what ``html/user/submit_rpc_handler.php``, ``job_file.php``,
``get_output.php``, ``apps.php?xml=1`` and the ``download/`` directory of
server release 1.4.7 answer, with the same XML in and out and the same
errors, acting on the throw-away project's database and directories as the
PHP does (permission checks of submit_util.inc, batch rows, inline files
staged as ``jf_<md5>``, create_work with its multi-row inserts, abort and
retire as submit_util.inc does them). Written from reading the PHP; none of
it is BOINC's code.

Faults for tests, one per matching request (``inject(command, kind)``):

* ``drop_before``: close the connection without acting or replying;
* ``drop_after``: act, then close the connection without a reply;
* ``slow_after``: act, then reply after ``slow_seconds`` (past the client's timeout);
* ``http500``: reply HTTP 500 without acting;
* ``error``: reply a BOINC ``<error>`` without acting.
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import os
import socket
import threading
import time
import urllib.parse
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.sax.saxutils import escape

from boinc_pymw.boinc.db import Database
from boinc_pymw.boinc.hierarchy import dir_hier_path

BATCH_STATE_INIT, BATCH_STATE_IN_PROGRESS, BATCH_STATE_COMPLETE = 0, 1, 2
BATCH_STATE_ABORTED, BATCH_STATE_RETIRED = 3, 4
#: create_work's multi-row INSERTs hold about 1 MB; here: this many jobs per insert
JOBS_PER_INSERT = 3


class XmlError(Exception):
    """What xml_error() prints; ``prefix`` is what the PHP echoed before it."""

    def __init__(self, message: str, num: int = -1, prefix: str = ""):
        super().__init__(message)
        self.num = num
        self.message = message
        self.prefix = prefix


class StandIn:
    """The project's web side on ``http://127.0.0.1:<port>/`` (``url``)."""

    def __init__(self, project, slow_seconds: float = 3.0):
        self.project = project
        self.db = Database.from_config(project.config)
        self.lock = threading.Lock()
        self.faults: list = []
        self.requests: list = []           # command names, in order of arrival
        self.slow_seconds = slow_seconds
        self.latency = 0.0                 # seconds added to every reply (a distant server)
        # 1.4.7's query_completed_job dies for a job without a canonical instance (it
        # reads an undefined $job_id; PHP 8 throws on the broken SQL): seen live
        self.php_query_completed_job_bug = True
        handler = type("Handler", (_Handler,), {"standin": self})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def inject(self, command: str, kind: str, times: int = 1) -> None:
        with self.lock:
            self.faults.extend([(command, kind)] * times)

    def take_fault(self, command: str):
        with self.lock:
            for i, (cmd, kind) in enumerate(self.faults):
                if cmd == command:
                    del self.faults[i]
                    return kind
        return None

    def close(self) -> None:
        if self.server is None:
            return
        server, self.server = self.server, None
        server.shutdown()
        server.server_close()
        self.db.close()

    # -- submit_util.inc --------------------------------------------------------------------
    def check_permissions(self, r, app):
        auth = _text(r, "authenticator")
        if not auth:
            raise XmlError("no authenticator")
        user = self.db.query_one("SELECT * FROM user WHERE authenticator=%s", (auth,))
        if user is None:
            raise XmlError("bad authenticator")
        us = self.db.query_one("SELECT * FROM user_submit WHERE user_id=%s", (user["id"],))
        if us is None:
            raise XmlError("no submit access")
        if app is not None and not us["submit_all"]:
            if self.db.query_one("SELECT * FROM user_submit_app WHERE user_id=%s AND app_id=%s",
                                 (user["id"], app["id"])) is None:
                raise XmlError("no app submit access")
        return user

    def get_submit_app(self, name):
        app = self.db.query_one("SELECT * FROM app WHERE name=%s", (name,))
        if app is None:
            raise XmlError(f"app not found: {escape(name)}")
        return app

    def get_batch(self, r):
        if _text(r, "batch_id") and int(_text(r, "batch_id")):
            batch = self.db.query_one("SELECT * FROM batch WHERE id=%s",
                                      (int(_text(r, "batch_id")),))
        elif _text(r, "batch_name"):
            batch = self.db.query_one("SELECT * FROM batch WHERE name=%s LIMIT 1",
                                      (_text(r, "batch_name"),))
        else:
            raise XmlError("batch not specified")
        if batch is None:
            raise XmlError("no such batch")
        return batch

    def batch_params(self, batch):
        """get_batch_params: fraction done, error jobs, complete state (written back)."""
        if batch["state"] == BATCH_STATE_INIT:
            return batch
        wus = self.db.query("SELECT * FROM workunit WHERE batch=%s", (batch["id"],))
        fp_total = fp_done = 0.0
        completed = True
        batch["nerror_jobs"] = 0
        for wu in wus:
            fp_total += wu["rsc_fpops_est"]
            if wu["canonical_resultid"]:
                fp_done += wu["rsc_fpops_est"]
            elif wu["error_mask"]:
                batch["nerror_jobs"] += 1
            else:
                completed = False
        if fp_total:
            batch["fraction_done"] = fp_done / fp_total
        if completed and batch["state"] == BATCH_STATE_IN_PROGRESS:
            batch["state"] = BATCH_STATE_COMPLETE
            batch["completion_time"] = time.time()
        self.db.execute("UPDATE batch SET fraction_done=%s, nerror_jobs=%s, state=%s, "
                        "completion_time=%s WHERE id=%s",
                        (batch["fraction_done"], batch["nerror_jobs"], batch["state"],
                         batch["completion_time"], batch["id"]))
        return batch

    def print_batch(self, batch) -> str:
        app = self.db.query_one("SELECT name FROM app WHERE id=%s", (batch["app_id"],))
        fields = ["id", "create_time", "expire_time", "est_completion_time", "njobs",
                  "fraction_done", "nerror_jobs", "state", "completion_time",
                  "credit_estimate", "credit_canonical", "name"]
        out = "".join(f"        <{f}>{batch[f]}</{f}>\n" for f in fields)
        return out + f"        <app_name>{app['name'] if app else 'none'}</app_name>\n"

    # -- submit_rpc_handler.php -------------------------------------------------------------
    def ping(self, r):
        return "<success>1</success>\n"

    def create_batch(self, r):
        app = self.get_submit_app(_text(r, "app_name"))
        user = self.check_permissions(r, app)
        batch_id = self._insert_batch(user, app, _text(r, "batch_name"),
                                      float(_text(r, "expire_time") or 0), 0, 0)
        return f"<batch_id>{batch_id}</batch_id>\n"

    def _insert_batch(self, user, app, name, expire_time, njobs, logical_end):
        return self.db.insert("batch", {
            "user_id": user["id"], "create_time": int(time.time()), "logical_start_time": 0,
            "logical_end_time": logical_end, "est_completion_time": 0, "njobs": njobs,
            "fraction_done": 0, "nerror_jobs": 0, "state": BATCH_STATE_INIT,
            "completion_time": 0, "credit_estimate": 0, "credit_canonical": 0,
            "credit_total": 0, "name": name, "app_id": app["id"], "project_state": 0,
            "description": "", "expire_time": expire_time})

    def submit_batch(self, r):
        b = r.find("batch")
        app = self.get_submit_app(_text(b, "app_name"))
        user = self.check_permissions(r, app)
        jobs = []
        for j in b.findall("job"):
            files = [(_text(f, "mode"), f.findtext("source") or "")
                     for f in j.findall("input_file")]
            own = j.find("input_template")       # asXML(): the element itself
            jobs.append((_text(j, "name"), files,
                         None if own is None else ET.tostring(own, encoding="unicode")))
        # read_input_template: the batch's workunit_template_file, else <app>_in;
        # validate_batch counts every job's files against it, if it exists
        template_path = os.path.join(self.project.path, "templates",
                                     _text(b, "workunit_template_file") or f"{app['name']}_in")
        if os.path.exists(template_path):
            n = len(ET.parse(template_path).getroot().findall("file_info"))
            for i, (_name, files, _own) in enumerate(jobs):
                if len(files) != n:
                    raise XmlError(f"wrong # of input files for job {i}: need {n}, "
                                   f"got {len(files)}")
        staged = [(name, [self._stage(mode, source) for mode, source in files], own)
                  for name, files, own in jobs]
        batch_id = int(_text(b, "batch_id") or 0)
        if batch_id:
            batch = self.db.query_one("SELECT * FROM batch WHERE id=%s", (batch_id,))
            if batch is None:
                raise XmlError(f"no batch {batch_id}")
            if batch["user_id"] != user["id"]:
                raise XmlError("not owner of batch")
            if batch["state"] != BATCH_STATE_INIT:
                raise XmlError("batch not in init state")
            self.db.execute("UPDATE batch SET njobs=%s, logical_end_time=0 WHERE id=%s",
                            (len(jobs), batch_id))
        else:
            batch_id = self._insert_batch(user, app, _text(b, "batch_name"), 0, len(jobs), 0)
        self._create_work(app, batch_id, staged)
        # BOINC's create_work leaves batch.njobs alone (ours counts what it adds)
        self.db.execute("UPDATE batch SET state=%s, njobs=%s WHERE id=%s",
                        (BATCH_STATE_IN_PROGRESS, len(jobs), batch_id))
        return f"<batch_id>{batch_id}</batch_id>\n"

    def _stage(self, mode, source):
        if mode == "local_staged":
            return source
        if mode == "inline":
            data = source.encode("utf-8")
            name = "jf_" + hashlib.md5(data).hexdigest()
            path = dir_hier_path(name, self.project.download_dir, self.project.fanout,
                                 create=True)
            if not os.path.exists(path):
                with open(path, "wb") as f:
                    f.write(data)
            return name
        raise XmlError(f"unsupported file mode: {mode}")

    def _create_work(self, app, batch_id, staged):
        """bin/create_work --stdin: jobs inserted a few at a time; the first failure
        stops it (earlier inserts stay), as its multi-row INSERTs do."""
        from boinc_pymw.boinc.create_work import Job
        from boinc_pymw.boinc.project import Project

        project = Project(self.project.path)
        try:
            for start in range(0, len(staged), JOBS_PER_INSERT):
                group = staged[start:start + JOBS_PER_INSERT]
                try:
                    project.create_batch([Job(app=app["name"], files=files, name=name,
                                              input_template=own)
                                          for name, files, own in group], batch_id=batch_id)
                except Exception as exc:
                    raise XmlError(f"create_work failed: {exc}") from None
        finally:
            project.close()

    def query_batch(self, r):
        user = self.check_permissions(r, None)
        batch = self.get_batch(r)
        if batch["user_id"] != user["id"]:
            raise XmlError("not owner of batch")
        wus = self.db.query("SELECT * FROM workunit WHERE batch=%s ORDER BY id", (batch["id"],))
        batch = self.batch_params(batch)
        out = [self.print_batch(batch)]
        details = int(_text(r, "get_job_details") or 0)
        for wu in wus:
            out.append(f"        <job>\n        <id>{wu['id']}</id>\n        <name>{wu['name']}"
                       f"</name>\n        <canonical_instance_id>{wu['canonical_resultid']}"
                       f"</canonical_instance_id>\n")
            if details:
                out.append(self._job_details(wu))
            out.append("        </job>\n")
        return "".join(out)

    def _job_details(self, wu) -> str:
        out = []
        for bit, word in ((1, "couldnt_send_result"), (2, "too_many_error_results"),
                          (4, "too_many_success_results"), (8, "too_many_total_results"),
                          (16, "cancelled"), (32, "no_canonical_result")):
            if wu["error_mask"] & bit:
                out.append(f"   <error>{word}</error>\n")
        in_progress = 0
        for r in self.db.query("SELECT * FROM result WHERE workunitid=%s", (wu["id"],)):
            if r["server_state"] == 4:
                in_progress += 1
            if wu["error_mask"] and r["outcome"] == 3:
                out.append(f"            <exit_status>{r['exit_status']}</exit_status>\n")
            if r["id"] == wu["canonical_resultid"]:
                out.append(f"            <cpu_time>{r['cpu_time']}</cpu_time>\n")
        if wu["error_mask"]:
            status = "error"
        elif wu["canonical_resultid"]:
            status = "done"
        else:
            status = "in_progress" if in_progress else "queued"
        out.append(f"            <status>{status}</status>\n")
        return "".join(out)

    def query_batches(self, r):
        user = self.check_permissions(r, None)
        out = []
        for batch in self.db.query("SELECT * FROM batch WHERE user_id=%s", (user["id"],)):
            if batch["state"] == BATCH_STATE_RETIRED:
                continue
            if batch["state"] < BATCH_STATE_COMPLETE:
                batch = self.batch_params(batch)
            out.append(f"    <batch>\n{self.print_batch(batch)}   </batch>\n")
        return "".join(out)

    def query_job(self, r):
        user = self.check_permissions(r, None)
        wu = self.db.query_one("SELECT * FROM workunit WHERE id=%s", (int(_text(r, "job_id")),))
        if wu is None:
            raise XmlError("no such job")
        batch = self.db.query_one("SELECT * FROM batch WHERE id=%s", (wu["batch"],))
        if batch is None or batch["user_id"] != user["id"]:
            raise XmlError("not owner")
        out = []
        for res in self.db.query("SELECT * FROM result WHERE workunitid=%s", (wu["id"],)):
            state = {2: "Unsent", 4: "In progress"}.get(res["server_state"], "Completed")
            out.append(f"    <instance>\n        <name>{res['name']}</name>\n        "
                       f"<id>{res['id']}</id>\n        <state>{state}</state>\n</instance>\n")
        return "".join(out)

    def query_completed_job(self, r):
        user = self.check_permissions(r, None)
        wu = self.db.query_one("SELECT * FROM workunit WHERE name=%s", (_text(r, "job_name"),))
        if wu is None:
            raise XmlError("no such job")
        batch = self.db.query_one("SELECT * FROM batch WHERE id=%s", (wu["batch"],))
        if batch is None or batch["user_id"] != user["id"]:
            raise XmlError("not owner")
        out = ["<completed_job>\n", f"   <error_mask>{wu['error_mask']}</error_mask>\n"]
        result = None
        if wu["canonical_resultid"]:
            result = self.db.query_one("SELECT * FROM result WHERE id=%s",
                                       (wu["canonical_resultid"],))
            out.append(f"   <canonical_resultid>{wu['canonical_resultid']}"
                       f"</canonical_resultid>\n")
        else:
            if self.php_query_completed_job_bug:
                # 1.4.7 enumerates "workunitid=$job_id" with $job_id undefined: the SQL
                # fails and PHP dies mid-reply
                raise _PhpFatal("Uncaught mysqli_sql_exception: You have an error in your "
                                "SQL syntax", "".join(out))
            for res in self.db.query("SELECT * FROM result WHERE workunitid=%s", (wu["id"],)):
                if res["outcome"] in (1, 3, 6):
                    result = res
            if result is not None:
                out.append(f"   <error_resultid>{result['id']}</error_resultid>\n")
        if result is not None:
            stderr = result["stderr_out"]
            if isinstance(stderr, bytes):
                stderr = stderr.decode("utf-8", "replace")
            out.append(f"   <exit_status>{result['exit_status']}</exit_status>\n"
                       f"   <elapsed_time>{result['elapsed_time']}</elapsed_time>\n"
                       f"   <cpu_time>{result['cpu_time']}</cpu_time>\n"
                       f"   <stderr_out><![CDATA[\n{escape(stderr)}   ]]></stderr_out>\n")
        out.append("</completed_job>\n")
        return "".join(out)

    def _owned_batch(self, r):
        user = self.check_permissions(r, None)
        batch = self.get_batch(r)
        if batch["user_id"] != user["id"]:
            raise XmlError("not owner of batch")
        return batch

    def _abort_workunit(self, wu):
        """submit_util.inc abort_workunit: unsent results over/didn't need, error bit 16."""
        self.db.execute("UPDATE result SET server_state=5, outcome=5 WHERE server_state=2 "
                        "AND workunitid=%s", (wu["id"],))
        self.db.execute("UPDATE workunit SET error_mask=error_mask|16 WHERE id=%s", (wu["id"],))

    def abort_batch(self, r):
        batch = self._owned_batch(r)
        for wu in self.db.query("SELECT * FROM workunit WHERE batch=%s", (batch["id"],)):
            self._abort_workunit(wu)
        self.db.execute("UPDATE batch SET state=%s WHERE id=%s", (BATCH_STATE_ABORTED,
                                                                 batch["id"]))
        return "<success>1</success>\n"

    def abort_jobs(self, r):
        user = self.check_permissions(r, None)
        out = []
        for node in r.findall("job_name"):
            name = (node.text or "").strip()
            wu = self.db.query_one("SELECT * FROM workunit WHERE name=%s", (name,))
            if wu is None:
                raise XmlError(f"no job {name}", prefix="".join(out))
            if not wu["batch"]:
                raise XmlError(f"job {name} is not part of a batch", prefix="".join(out))
            batch = self.db.query_one("SELECT * FROM batch WHERE id=%s", (wu["batch"],))
            if batch is None or batch["user_id"] != user["id"]:
                raise XmlError("not owner of batch", prefix="".join(out))
            out.append(f"<aborted {name}>\n")      # 1.4.7 prints this malformed tag
            self._abort_workunit(wu)
        return "".join(out) + "<success>1</success>\n"

    def retire_batch(self, r):
        batch = self._owned_batch(r)
        now = int(time.time())
        self.db.execute("UPDATE workunit SET assimilate_state=2, transition_time=%s "
                        "WHERE batch=%s", (now, batch["id"]))
        self.db.execute("UPDATE batch SET state=%s WHERE id=%s", (BATCH_STATE_RETIRED,
                                                                 batch["id"]))
        return "<success>1</success>\n"

    def get_templates(self, r):
        name = _text(r, "app_name")
        if name:
            app = self.get_submit_app(name)
        else:
            wu = self.db.query_one("SELECT * FROM workunit WHERE name=%s",
                                   (_text(r, "job_name"),))
            if wu is None:
                raise XmlError(f"job not found: {escape(_text(r, 'job_name'))}")
            app = self.db.query_one("SELECT * FROM app WHERE id=%s", (wu["appid"],))
        self.check_permissions(r, app)
        texts = []
        for suffix in ("_in", "_out"):
            try:
                with open(os.path.join(self.project.path, "templates", app["name"] + suffix)) as f:
                    texts.append(f.read())
            except OSError:
                raise XmlError("template file missing") from None
        return f"<templates>\n{texts[0]}\n{texts[1]}\n</templates>\n"

    # -- job_file.php ----------------------------------------------------------------------------
    def query_files(self, r):
        self.check_permissions(r, None)
        absent = []
        for i, node in enumerate(r.findall("phys_name")):
            name = (node.text or "").strip()
            if not _valid_filename(name):
                raise XmlError("bad filename")
            path = dir_hier_path(name, os.path.join(self.project.path, "download"),
                                 self.project.fanout)
            if not os.path.exists(path):
                absent.append(i)
        return "<absent_files>\n" + "".join(f"<file>{i}</file>\n" for i in absent) + \
            "</absent_files>\n"

    def upload_files(self, r, files):
        self.check_permissions(r, None)
        names = [(n.text or "").strip() for n in r.findall("phys_name")]
        if len(files) != len(names):
            raise XmlError(f"# of uploaded files ({len(files)}) doesn't agree with request "
                           f"({len(names)})")
        for name in names:
            if not _valid_filename(name):
                raise XmlError("bad filename")
        for name, data in zip(names, files):
            path = dir_hier_path(name, os.path.join(self.project.path, "download"),
                                 self.project.fanout, create=True)
            if os.path.exists(path):
                with open(path, "rb") as f:
                    if f.read() != data:
                        raise XmlError(f"file immutability violation for {name}")
                continue
            with open(path, "wb") as f:
                f.write(data)
        return "<success/>\n"

    # -- get_output.php, apps.php ----------------------------------------------------------------
    def get_output(self, query):
        """(body, is_file): result_file of an instance, or 'ERROR: ...' text."""
        if query.get("cmd") != "result_file":
            return b"bad command\n", False
        name = query.get("result_name", "")
        res = self.db.query_one("SELECT * FROM result WHERE name=%s", (name,))
        if res is None:
            return f"ERROR: no job instance {escape(name)}".encode(), False
        wu = self.db.query_one("SELECT * FROM workunit WHERE id=%s", (res["workunitid"],))
        batch = self.db.query_one("SELECT * FROM batch WHERE id=%s", (wu["batch"],))
        if batch is None:
            return f"ERROR: no batch {wu['batch']}".encode(), False
        user = self.db.query_one("SELECT * FROM user WHERE id=%s", (batch["user_id"],))
        if hashlib.md5((user["authenticator"] + name).encode()).hexdigest() != \
                query.get("auth_str"):
            return b"ERROR: bad authenticator", False
        xml_doc_out = res["xml_doc_out"]
        if isinstance(xml_doc_out, bytes):
            xml_doc_out = xml_doc_out.decode()
        names = [fi.findtext("name") for fi in
                 ET.fromstring(f"<a>{xml_doc_out}</a>").findall("file_info")]
        num = int(query.get("file_num", 0))
        if num >= len(names):
            return f"ERROR: bad file num: {num} > {len(names)}".encode(), False
        path = self.project.upload_path(names[num])
        if not os.path.isfile(path):
            return f"ERROR: no such file {path}".encode(), False
        with open(path, "rb") as f:
            return f.read(), True

    def apps_xml(self) -> str:
        out = ['<?xml version="1.0" encoding="ISO-8859-1" ?>\n<app_versions>\n']
        platforms = self.db.query("SELECT * FROM platform WHERE deprecated=0")
        for app in self.db.query("SELECT * FROM app WHERE deprecated=0"):
            out.append(f"<application>\n    <user_friendly_name>{app['user_friendly_name']}"
                       f"</user_friendly_name>\n    <name>{app['name']}</name>\n    "
                       f"<id>{app['id']}</id>\n")
            for platform in platforms:
                rows = self.db.query(
                    "SELECT * FROM app_version WHERE appid=%s AND platformid=%s AND "
                    "deprecated=0 ORDER BY version_num DESC", (app["id"], platform["id"]))
                seen = set()
                for av in rows:                     # latest version per plan class
                    if av["plan_class"] in seen:
                        continue
                    seen.add(av["plan_class"])
                    out.append(f"    <version>\n        <platform_short>{platform['name']}"
                               f"</platform_short>\n        <version_num>{av['version_num']}"
                               f"</version_num>\n        <plan_class>{av['plan_class']}"
                               f"</plan_class>\n    </version>\n")
            out.append("    </application>\n")
        out.append("</app_versions>\n")
        return "".join(out)


class _PhpFatal(Exception):
    """PHP died after printing ``printed``; its error text follows in the reply."""

    def __init__(self, message: str, printed: str = ""):
        super().__init__(message)
        self.printed = printed


def _valid_filename(name: str) -> bool:
    import re

    return len(name) <= 255 and re.fullmatch(r"[\w\-.]+", name) is not None


def _text(node, tag):
    if node is None:
        return ""
    return (node.findtext(tag) or "").strip()


COMMANDS = {"ping", "create_batch", "submit_batch", "query_batch", "query_batches", "query_job",
            "query_completed_job", "abort_batch", "abort_jobs", "retire_batch", "get_templates"}


class _Handler(BaseHTTPRequestHandler):
    standin: StandIn
    protocol_version = "HTTP/1.0"

    def log_message(self, *args):      # quiet
        pass

    def _send(self, status: int, body: bytes, content_type: str = "text/xml",
              headers: dict = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _moved(self) -> bool:
        """/old/...: the project moved (as an http -> https redirect would)."""
        if not self.path.startswith("/old/"):
            return False
        self.send_response(301)
        self.send_header("Location", self.path[len("/old"):])
        self.send_header("Content-Length", "0")
        self.end_headers()
        return True

    def do_GET(self):
        if self._moved():
            return
        s = self.standin
        time.sleep(s.latency)
        parsed = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(parsed.query))
        if parsed.path == "/get_output.php":
            s.requests.append("get_output")
            fault = s.take_fault("get_output")
            if fault == "http500":
                return self._send(500, b"Internal Server Error", "text/html")
            if fault == "drop_before":
                return self._drop()
            with s.lock:
                body, is_file = s.get_output(query)
            if is_file:
                return self._send(200, body, "application/octet-stream",
                                  {"Content-Disposition": "attachment; filename=x"})
            return self._send(200, body, "text/html")
        if parsed.path == "/apps.php" and query.get("xml"):
            s.requests.append("apps")
            with s.lock:
                return self._send(200, s.apps_xml().encode())
        if parsed.path.startswith("/download/"):
            name = parsed.path[len("/download/"):]
            path = os.path.join(s.project.download_dir, name)
            if "/" in name or not os.path.isfile(path):
                return self._send(404, b"Not Found", "text/html")
            with open(path, "rb") as f:
                return self._send(200, f.read(), "application/octet-stream")
        self._send(404, b"Not Found", "text/html")

    def do_POST(self):
        if self._moved():
            return
        s = self.standin
        time.sleep(s.latency)
        path = urllib.parse.urlsplit(self.path).path
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        files = []
        content_type = self.headers.get("Content-Type", "")
        if content_type.startswith("multipart/form-data"):
            message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw)
            form = {}
            for part in message.iter_parts():
                if part.get_filename():
                    files.append(part.get_payload(decode=True))
                else:
                    form[part.get_param("name", header="content-disposition")] = \
                        part.get_payload(decode=True).decode()
        else:
            form = dict(urllib.parse.parse_qsl(raw.decode()))
        if path not in ("/submit_rpc_handler.php", "/job_file.php"):
            return self._send(404, b"Not Found", "text/html")
        header = '<?xml version="1.0" encoding="ISO-8859-1" ?>\n'
        try:
            r = ET.fromstring(form.get("request", ""))
        except ET.ParseError:
            body = (header + "<error>\n    <error_num>-1</error_num>\n    <error_msg>can't "
                    "parse request message: " + escape(form.get("request", "")) +
                    "</error_msg>\n</error>\n")
            return self._send(200, body.encode("latin-1", "replace"))
        command = r.tag
        s.requests.append(command)
        fault = s.take_fault(command)
        if fault == "drop_before":
            return self._drop()
        if fault == "http500":
            return self._send(500, b"<html>Internal Server Error</html>", "text/html")
        if fault == "error":
            return self._send(200, (header + f"<{command}>\n<error>\n    <error_num>-1"
                                    f"</error_num>\n    <error_msg>injected failure"
                                    f"</error_msg>\n</error>\n</{command}>\n").encode())
        allowed = COMMANDS if path == "/submit_rpc_handler.php" else {"query_files",
                                                                        "upload_files"}
        with s.lock:
            try:
                if command not in allowed:
                    raise XmlError("bad command: " + command if path.endswith("handler.php")
                                   else "no such action")
                if command == "upload_files":
                    inner = s.upload_files(r, files)
                else:
                    inner = getattr(s, command)(r)
                body = f"{header}<{command}>\n{inner}</{command}>\n"
            except XmlError as exc:
                body = (f"{header}<{command}>\n{exc.prefix}<error>\n    "
                        f"<error_num>{exc.num}</error_num>\n    <error_msg>{exc.message}"
                        f"</error_msg>\n</error>\n</{command}>\n")
            except _PhpFatal as exc:      # what PHP 8 prints (display_errors on), HTTP 200
                body = (f"{header}<{command}>\n{exc.printed}"
                        f"<br />\n<b>Warning</b>:  Undefined variable $job_id in <b>submit_rpc_"
                        f"handler.php</b> on line <b>858</b><br />\n<br />\n<b>Fatal error</b>:"
                        f"  {exc} in db_conn.inc:69\nStack trace:\n#0 {{main}}\n  thrown in "
                        f"<b>db_conn.inc</b> on line <b>69</b><br />\n")
        if fault == "drop_after":
            return self._drop()
        if fault == "slow_after":
            time.sleep(s.slow_seconds)
        self._send(200, body.encode("latin-1", "replace"))
