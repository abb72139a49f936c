"""A client for BOINC's remote job submission web RPCs (server 1.4.7).

Every request and reply below is the one BOINC's PHP at tag
``server_release/1.4/1.4.7`` speaks; each method names the PHP function it
talks to. The transport is the one BOINC's own Python binding
(``lib/submit_api.py``) uses::

    POST <project url>/submit_rpc_handler.php   request=<command>...</command>
    POST <project url>/job_file.php             request=<query_files|upload_files>
                                                (+ multipart files for upload_files)
    GET  <project url>/get_output.php?cmd=result_file&result_name=R&file_num=I
                                     &auth_str=md5(authenticator + R)
    GET  <project url>/apps.php?xml=1           app versions (public)
    GET  <download url>/<file>                  app version files (public)

Replies are XML (``<command>...</command>``); a refusal is
``<error><error_num>N</error_num><error_msg>...</error_msg></error>``
(html/inc/util_basic.inc ``xml_error``), inside the command's tag or alone.
get_output.php answers ``ERROR: ...`` as text instead of a file.

What can go wrong ends as one of two exceptions:

* :class:`BoincRpcError`: the server answered and refused (``error_msg``).
  Nothing was done by that request, except where the PHP itself works
  step by step (submit_batch creates jobs one by one; see the back end).
* :class:`RpcTransportError`: no usable answer (timeout, connection refused
  or dropped, HTTP error status, a reply that is not the expected XML).
  The request may or may not have been acted on; ``retryable`` says whether
  asking again can help. Read-only requests are retried with backoff here;
  requests that change things are never repeated blindly (the caller checks
  first what the server has).

The authenticator is sent only in POST bodies (and as an md5 digest with a
result name to get_output.php), never logged, and kept out of ``repr``.
"""

from __future__ import annotations

import hashlib
import http.client
import ipaddress
import logging
import re
import secrets
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence
from xml.sax.saxutils import escape

from ...errors import BoincPymwError

log = logging.getLogger("boinc_pymw.backends.boinc.remote")

#: batch.state (html/inc/common_defs.inc BATCH_STATE_*)
BATCH_STATES = {0: "init", 1: "in progress", 2: "complete", 3: "aborted", 4: "retired",
                5: "expired"}
BATCH_STATE_INIT = 0
BATCH_STATE_RETIRED = 4

#: largest reply read (a query_batch of a big batch is a few MB)
MAX_REPLY_BYTES = 256 * 1024 * 1024


class RemoteError(BoincPymwError):
    """Talking to a BOINC project's web RPCs failed."""


class RpcTransportError(RemoteError):
    """No usable reply: the request may or may not have been acted on."""

    def __init__(self, message: str, *, retryable: bool = True, status: Optional[int] = None):
        super().__init__(message)
        self.retryable = retryable
        self.status = status


class BoincRpcError(RemoteError):
    """The project answered with an error (``error_num``, ``error_msg``)."""

    def __init__(self, command: str, error_num: int, message: str):
        super().__init__(f"{command}: the project refused: {message} (error {error_num})")
        self.command = command
        self.error_num = error_num
        self.message = message


# -- replies --------------------------------------------------------------------------------
@dataclass
class JobStatus:
    """One job of a query_batch reply (with get_job_details: status, errors)."""

    id: int
    name: str
    canonical_instance_id: int = 0
    status: str = ""                 # done | error | in_progress | queued ("" = not asked)
    errors: list = field(default_factory=list)        # couldnt_send_result, cancelled, ...
    exit_statuses: list = field(default_factory=list)
    cpu_time: float = 0.0


@dataclass
class BatchInfo:
    """A batch as print_batch_params (submit_rpc_handler.php) describes it."""

    id: int
    name: str
    state: int
    njobs: int = 0
    fraction_done: float = 0.0
    nerror_jobs: int = 0
    create_time: float = 0.0
    completion_time: float = 0.0
    app_name: str = ""
    credit_canonical: float = 0.0
    jobs: list = field(default_factory=list)

    @property
    def state_name(self) -> str:
        return BATCH_STATES.get(self.state, str(self.state))


@dataclass
class Instance:
    """A job instance (BOINC result) as query_job lists it."""

    name: str
    id: int
    state: str


@dataclass
class CompletedJob:
    """query_completed_job's answer: the canonical or a failed instance's facts."""

    error_mask: int
    canonical_resultid: int = 0
    error_resultid: int = 0
    exit_status: Optional[int] = None
    cpu_time: float = 0.0
    stderr_out: str = ""


@dataclass(frozen=True)
class JobInput:
    """One input file of a job: ``inline`` (the bytes travel in the request) or
    ``local_staged`` (a file uploaded before with job_file.php, by physical name)."""

    mode: str
    source: str


@dataclass(frozen=True)
class JobRequest:
    """One job of submit_batch: its (workunit) name and input files, and its own
    input template (an ``<input_template>`` document) when its files are not the
    app template's."""

    name: str
    inputs: tuple
    input_template: Optional[str] = None


#: batch-level template named when jobs bring their own: submit_batch (1.4.7 to
#: 1.6) counts every job's input files against ONE batch-level template
#: (validate_batch), templates/<workunit_template_file> or else templates/<app>_in,
#: even for jobs with their own; a file that does not exist skips that count
#: (read_input_template returns null) and create_work checks each job against
#: its own template instead. Nothing may be installed under this name.
NO_BATCH_TEMPLATE = "boinc_pymw_jobs_have_their_own_input_templates"


def job_file_name(data: bytes) -> str:
    """The physical name BOINC gives a job file: ``jf_<md5>`` (submit_util.inc job_file_name)."""
    return "jf_" + hashlib.md5(data).hexdigest()


def is_local_host(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    if host in ("localhost", "localhost.localdomain") or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _text(node, tag: str, default: str = "") -> str:
    child = node.find(tag)
    if child is None or child.text is None:
        return default
    return child.text.strip()


def _int(node, tag: str, default: int = 0) -> int:
    try:
        return int(float(_text(node, tag) or default))
    except ValueError:
        return default


def _float(node, tag: str, default: float = 0.0) -> float:
    try:
        return float(_text(node, tag) or default)
    except ValueError:
        return default


#: PHP's own warnings printed into a reply (display_errors is on in these scripts)
_PHP_NOISE = re.compile(rb"<br\s*/>\s*<b>(?:Warning|Notice|Deprecated|Fatal error)</b>:.*?<br\s*/>",
                        re.S)
#: abort_jobs in 1.4.7 echoes ``<aborted NAME>`` per job, which is not well-formed XML
_ABORTED_LINE = re.compile(rb"<aborted [^>]*>")


def parse_reply(command: str, body: bytes) -> ET.Element:
    """The reply's root element; raises BoincRpcError for an ``<error>`` reply
    and RpcTransportError for anything that is not the command's XML."""
    cleaned = _ABORTED_LINE.sub(b"", body)
    root = None
    for attempt in (cleaned, _PHP_NOISE.sub(b"", cleaned)):
        try:
            root = ET.fromstring(attempt)
            break
        except ET.ParseError:
            continue
    if root is None:
        excerpt = body[:300].decode("utf-8", "replace").strip()
        raise RpcTransportError(f"{command}: the reply is not XML: {excerpt!r}", retryable=False)
    error = root if root.tag == "error" else root.find("error")
    # xml_error always writes error_num; a PHP warning turned into XML (RPC_DEBUG) has none
    if error is not None and error.find("error_num") is not None:
        raise BoincRpcError(command, _int(error, "error_num", -1),
                            _text(error, "error_msg", "unknown error"))
    if root.tag != command:
        raise RpcTransportError(f"{command}: unexpected reply <{root.tag}>", retryable=False)
    return root


def _batch_info(node) -> BatchInfo:
    info = BatchInfo(
        id=_int(node, "id"), name=_text(node, "name"), state=_int(node, "state"),
        njobs=_int(node, "njobs"), fraction_done=_float(node, "fraction_done"),
        nerror_jobs=_int(node, "nerror_jobs"), create_time=_float(node, "create_time"),
        completion_time=_float(node, "completion_time"), app_name=_text(node, "app_name"),
        credit_canonical=_float(node, "credit_canonical"))
    for job in node.findall("job"):
        exit_statuses = []
        for x in job.findall("exit_status"):
            try:
                exit_statuses.append(int((x.text or "").strip()))
            except ValueError:
                pass
        info.jobs.append(JobStatus(
            id=_int(job, "id"), name=_text(job, "name"),
            canonical_instance_id=_int(job, "canonical_instance_id"),
            status=_text(job, "status"),
            errors=[(e.text or "").strip() for e in job.findall("error")],
            exit_statuses=exit_statuses, cpu_time=_float(job, "cpu_time")))
    return info


# -- the client -----------------------------------------------------------------------------
class SubmitClient:
    """One project's remote submission RPCs, for one account.

    ``url`` is the project's master URL (``http://host/project/``);
    ``timeout`` bounds each HTTP exchange; read-only requests are tried
    ``retries + 1`` times with backoff starting at ``backoff`` seconds.
    """

    def __init__(self, url: str, authenticator: str, *, timeout: float = 60.0,
                 retries: int = 3, backoff: float = 1.0,
                 sleep: Callable[[float], None] = time.sleep):
        if not url or urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise RemoteError(f"project URL {url!r}: expected http(s)://host/project/")
        if not authenticator or not re.fullmatch(r"[A-Za-z0-9_]+", authenticator):
            raise RemoteError("the account authenticator is empty or malformed "
                              "(expected letters and digits)")
        self.url = url if url.endswith("/") else url + "/"
        self._authenticator = authenticator
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.backoff = float(backoff)
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"<SubmitClient {self.url}>"

    # -- HTTP ----------------------------------------------------------------------------------
    def _exchange(self, what: str, url: str, data: Optional[bytes] = None,
                  headers: Optional[dict] = None, max_bytes: int = MAX_REPLY_BYTES):
        """One HTTP exchange: (body, response headers); transport failures raise."""
        shown = url.split("?", 1)[0]
        request = urllib.request.Request(url, data=data, headers=headers or {})
        try:
            with _OPENER.open(request, timeout=self.timeout) as response:
                body = response.read(max_bytes + 1)
                if len(body) > max_bytes:
                    raise RpcTransportError(f"{what}: reply from {shown} is larger than "
                                            f"{max_bytes} bytes", retryable=False)
                return body, response.headers
        except urllib.error.HTTPError as exc:
            exc.close()
            if 300 <= exc.code < 400:
                raise RpcTransportError(
                    f"{what}: {shown} redirects to {exc.headers.get('Location')}; give the "
                    f"project URL as it is served", retryable=False, status=exc.code) from None
            retryable = exc.code >= 500 or exc.code in (408, 429)
            hint = ""
            if exc.code == 404:
                hint = f" (is {self.url} the project's URL, with its web RPCs?)"
            raise RpcTransportError(f"{what}: HTTP {exc.code} {exc.reason} from {shown}{hint}",
                                    retryable=retryable, status=exc.code) from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, (socket.timeout, TimeoutError)):
                raise RpcTransportError(f"{what}: no reply from {shown} within "
                                        f"{self.timeout:g} s") from None
            raise RpcTransportError(f"{what}: cannot reach {shown}: {reason}") from None
        except (socket.timeout, TimeoutError):
            raise RpcTransportError(f"{what}: no reply from {shown} within "
                                    f"{self.timeout:g} s") from None
        except (http.client.HTTPException, ConnectionError, OSError) as exc:
            raise RpcTransportError(f"{what}: connection to {shown} dropped: "
                                    f"{type(exc).__name__}: {exc}") from None

    def _with_retries(self, what: str, attempt: Callable, idempotent: bool):
        delay = self.backoff
        tries = self.retries + 1 if idempotent else 1
        for n in range(tries):
            try:
                return attempt()
            except RpcTransportError as exc:
                if not exc.retryable or n == tries - 1:
                    raise
                log.info("%s failed (%s); trying again in %.1f s", what, exc, delay)
                self._sleep(delay)
                delay = min(delay * 2, 60.0)

    def call(self, command: str, body_xml: str, *, idempotent: bool,
             handler: str = "submit_rpc_handler.php", files: Sequence = ()) -> ET.Element:
        """POST ``<command><authenticator/>body_xml</command>``; the parsed reply."""
        request = (f"<{command}>\n<authenticator>{self._authenticator}</authenticator>\n"
                   f"{body_xml}</{command}>\n")
        if files:
            data, content_type = _multipart({"request": request}, files)
        else:
            data = urllib.parse.urlencode({"request": request}).encode()
            content_type = "application/x-www-form-urlencoded"
        url = self.url + handler

        def attempt():
            body, _headers = self._exchange(command, url, data, {"Content-Type": content_type})
            return parse_reply(command, body)

        return self._with_retries(command, attempt, idempotent)

    # -- submit_rpc_handler.php ----------------------------------------------------------
    def ping(self) -> None:
        """``ping``: the web site and its database answer."""
        self.call("ping", "", idempotent=True)

    def create_batch(self, app_name: str, batch_name: str, expire_time: float = 0) -> int:
        """``create_batch``: an empty batch (state init) owned by this account; its id."""
        reply = self.call("create_batch",
                          f"<app_name>{escape(app_name)}</app_name>\n"
                          f"<batch_name>{escape(batch_name)}</batch_name>\n"
                          f"<expire_time>{float(expire_time):f}</expire_time>\n",
                          idempotent=False)
        batch_id = _int(reply, "batch_id")
        if not batch_id:
            raise RpcTransportError("create_batch: the reply has no batch_id", retryable=False)
        return batch_id

    def submit_batch(self, app_name: str, batch_id: int, jobs: Sequence[JobRequest]) -> int:
        """``submit_batch`` into batch ``batch_id`` (which must be in state init):
        the PHP stages inline files, runs create_work for every job, then sets
        the batch in progress."""
        parts = [f"<batch>\n<app_name>{escape(app_name)}</app_name>\n"
                 f"<batch_id>{int(batch_id)}</batch_id>\n"]
        if any(job.input_template for job in jobs):
            parts.append(f"<workunit_template_file>{NO_BATCH_TEMPLATE}"
                         f"</workunit_template_file>\n")
        for job in jobs:
            parts.append(f"<job>\n<name>{escape(job.name)}</name>\n")
            for item in job.inputs:
                parts.append(f"<input_file>\n<mode>{item.mode}</mode>\n"
                             f"<source>{escape(item.source)}</source>\n</input_file>\n")
            if job.input_template:
                parts.append(job.input_template.strip() + "\n")
            parts.append("</job>\n")
        parts.append("</batch>\n")
        reply = self.call("submit_batch", "".join(parts), idempotent=False)
        return _int(reply, "batch_id")

    def query_batch(self, batch_id: Optional[int] = None, batch_name: Optional[str] = None,
                    job_details: bool = True) -> BatchInfo:
        """``query_batch`` by id or name: the batch and its jobs (with their status
        when ``job_details``)."""
        if batch_id:
            which = f"<batch_id>{int(batch_id)}</batch_id>\n"
        elif batch_name:
            which = f"<batch_name>{escape(batch_name)}</batch_name>\n"
        else:
            raise ValueError("query_batch needs a batch id or name")
        reply = self.call("query_batch", which + "<get_cpu_time>0</get_cpu_time>\n"
                          f"<get_job_details>{int(bool(job_details))}</get_job_details>\n",
                          idempotent=True)
        return _batch_info(reply)

    def query_batches(self) -> list:
        """``query_batches``: this account's batches that are not retired."""
        reply = self.call("query_batches", "<get_cpu_time>0</get_cpu_time>\n", idempotent=True)
        return [_batch_info(node) for node in reply.findall("batch")]

    def query_job(self, job_id: int) -> list:
        """``query_job``: the instances (results) of one job."""
        reply = self.call("query_job", f"<job_id>{int(job_id)}</job_id>\n", idempotent=True)
        return [Instance(_text(n, "name"), _int(n, "id"), _text(n, "state"))
                for n in reply.findall("instance")]

    def query_completed_job(self, job_name: str) -> CompletedJob:
        """``query_completed_job``: error mask, exit status and stderr of the canonical
        or a failed instance."""
        reply = self.call("query_completed_job", f"<job_name>{escape(job_name)}</job_name>\n",
                          idempotent=True)
        node = reply.find("completed_job")
        if node is None:
            raise RpcTransportError("query_completed_job: the reply has no completed_job",
                                    retryable=False)
        exit_status = _text(node, "exit_status")
        return CompletedJob(
            error_mask=_int(node, "error_mask"),
            canonical_resultid=_int(node, "canonical_resultid"),
            error_resultid=_int(node, "error_resultid"),
            exit_status=int(float(exit_status)) if exit_status else None,
            cpu_time=_float(node, "cpu_time"), stderr_out=_text(node, "stderr_out"))

    def abort_batch(self, batch_id: int) -> None:
        """``abort_batch``: every job of the batch is cancelled."""
        self.call("abort_batch", f"<batch_id>{int(batch_id)}</batch_id>\n", idempotent=True)

    def abort_jobs(self, job_names: Sequence[str]) -> None:
        """``abort_jobs``: unsent instances become 'didn't need', the job is cancelled."""
        if job_names:
            self.call("abort_jobs", "".join(f"<job_name>{escape(n)}</job_name>\n"
                                            for n in job_names), idempotent=True)

    def retire_batch(self, batch_id: int) -> None:
        """``retire_batch``: the jobs are marked assimilated (db_purge may remove them)."""
        self.call("retire_batch", f"<batch_id>{int(batch_id)}</batch_id>\n", idempotent=True)

    def get_templates(self, app_name: str) -> ET.Element:
        """``get_templates``: the app's input and output templates; also checks that
        this account may submit to the app."""
        reply = self.call("get_templates", f"<app_name>{escape(app_name)}</app_name>\n",
                          idempotent=True)
        templates = reply.find("templates")
        if templates is None:
            raise RpcTransportError("get_templates: the reply has no templates", retryable=False)
        return templates

    # -- job_file.php ---------------------------------------------------------------------
    def query_files(self, names: Sequence[str], delete_time: float = 0) -> list:
        """``query_files``: indices of ``names`` the server does not have."""
        reply = self.call("query_files", f"<batch_id>0</batch_id>\n"
                          f"<delete_time>{int(delete_time)}</delete_time>\n" +
                          "".join(f"<phys_name>{escape(n)}</phys_name>\n" for n in names),
                          idempotent=True, handler="job_file.php")
        absent = reply.find("absent_files")
        return [] if absent is None else [int(f.text) for f in absent.findall("file")]

    def upload_files(self, files: Sequence[tuple], delete_time: float = 0) -> None:
        """``upload_files``: (physical name, bytes) pairs as multipart attachments.
        Idempotent: a file already there with the same bytes is accepted again."""
        self.call("upload_files", f"<batch_id>0</batch_id>\n"
                  f"<delete_time>{int(delete_time)}</delete_time>\n" +
                  "".join(f"<phys_name>{escape(n)}</phys_name>\n" for n, _ in files),
                  idempotent=True, handler="job_file.php", files=files)

    # -- get_output.php, apps.php, download/ ----------------------------------------------------
    def get_output_file(self, result_name: str, file_num: int, max_bytes: int) -> bytes:
        """get_output.php ``result_file``: output file ``file_num`` of an instance."""
        auth = hashlib.md5((self._authenticator + result_name).encode()).hexdigest()
        query = urllib.parse.urlencode({"cmd": "result_file", "result_name": result_name,
                                        "file_num": int(file_num), "auth_str": auth})
        what = f"get_output {result_name}#{file_num}"

        def attempt():
            body, headers = self._exchange(what, f"{self.url}get_output.php?{query}",
                                           max_bytes=max_bytes)
            if "attachment" not in (headers.get("Content-Disposition") or ""):
                text = body[:500].decode("utf-8", "replace").strip()
                if text.startswith("ERROR:"):
                    raise BoincRpcError("get_output", -1, text[6:].strip())
                raise RpcTransportError(f"{what}: not a file: {text[:200]!r}", retryable=False)
            return body

        return self._with_retries(what, attempt, idempotent=True)

    def app_versions(self) -> dict:
        """apps.php?xml=1: app name -> [(platform, version_num, plan_class)] of the
        current versions."""
        def attempt():
            body, _ = self._exchange("apps.php", self.url + "apps.php?xml=1")
            try:
                root = ET.fromstring(_PHP_NOISE.sub(b"", body))
            except ET.ParseError:
                raise RpcTransportError("apps.php?xml=1: the reply is not XML",
                                        retryable=False) from None
            return root

        root = self._with_retries("apps.php", attempt, idempotent=True)
        apps = {}
        for app in root.findall("application"):
            apps[_text(app, "name")] = [
                (_text(v, "platform_short"), _int(v, "version_num"), _text(v, "plan_class"))
                for v in app.findall("version")]
        return apps

    def download(self, url: str, max_bytes: int) -> Optional[bytes]:
        """A public file (None when the server has no such file)."""
        try:
            body, _ = self._with_retries(
                "download", lambda: self._exchange("download", url, max_bytes=max_bytes),
                idempotent=True)
        except RpcTransportError as exc:
            if exc.status in (403, 404):
                return None
            raise
        return body


class _NoPostRedirect(urllib.request.HTTPRedirectHandler):
    """Follow redirects of GETs only: a redirected POST would arrive as a GET
    without its request (urllib's rule), so it becomes an error that says where."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if req.data is not None:
            return None
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_NoPostRedirect)


def _multipart(fields: dict, files: Sequence[tuple]) -> tuple:
    """A multipart/form-data body: form ``fields`` plus ``file_<i>`` attachments."""
    boundary = "boinc_pymw_" + secrets.token_hex(16)
    out = []
    for name, value in fields.items():
        out += [f"--{boundary}\r\n".encode(),
                f'Content-Disposition: form-data; name="{name}"\r\n\r\n'.encode(),
                value.encode(), b"\r\n"]
    for i, (physical_name, data) in enumerate(files):
        out += [f"--{boundary}\r\n".encode(),
                f'Content-Disposition: form-data; name="file_{i}"; '
                f'filename="{physical_name}"\r\n'.encode(),
                b"Content-Type: application/octet-stream\r\n\r\n", bytes(data), b"\r\n"]
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out), f"multipart/form-data; boundary={boundary}"
