"""Remote BOINC back end: ``-i boinc --url URL --app NAME`` from any machine.

The Master runs on a laptop; the project runs on a BOINC server that it
reaches only through BOINC's remote job submission web RPCs (see ``_rpc``).
Nothing of boinc_pymw needs to run on the server beyond what ``install-app``
put there (the app version and its templates).

Data flow::

    Master.submit / map --> WorkItem (one call; default_chunksize = 1)
        |  encode_call: the same JSON job document as ``-i boinc`` (calls.py),
        |  checked first against the app version's entry points (_app_check)
        v
    queue --(sender, after submit_delay)--> BOINC batch "<batch>" (then "<batch>#1",
        |   "<batch>#2", ...: a 1.4.7 batch takes jobs only while in state init,
        |   so every flush of new calls is one more part of the Master's batch)
        |   create_batch (empty, named) -> submit_batch(batch_id, jobs)
        |   job "<batch>_<n>_<md5 of input[:10]>", one input file:
        |   inline (small) or uploaded with job_file.php (jf_<md5>, local_staged)
        v
    BOINC: create_work -> transitioner -> scheduler -> volunteers -> validator
        (outputs must stay in upload/ until fetched: see the README, "Remote submission")
        v
    poller, every poll_interval (x1.5 up to max_poll_interval while nothing moves):
        query_batch(part) -> a canonical instance: done; more jobs in error than
          seen: query_batch(part, job details) for their error words and exit statuses
        -> done (fetch_threads at a time): query_job (canonical instance name)
          -> get_output.php output.json (untrusted JSON, size-limited) -> decode_output
        -> error: WorkunitFailed (error bits, exit statuses; stderr via
           query_completed_job where the server's PHP can give it)

Nothing is submitted twice: job names are fixed by call index and input,
BOINC's workunit names are unique, and after an uncertain failure (timeout,
dropped connection, HTTP 5xx) the sender asks the server which jobs exist
before it sends the others again. Reattaching (``batch=`` an existing batch
name or id) reads the parts and their jobs: calls whose job exists with the
same input are not submitted again and complete from the server; a call
with other input under an existing index is refused.

Cancelling a future aborts its job (``abort_jobs``); ``cancel_batch()``
aborts every part. ``shutdown`` retires the parts (``retire_batch``) once
every job of the batch has been fetched or cancelled, unless
``keep_batch=True``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Optional, Sequence

from ...errors import BoincPymwError
from ..base import Backend, WorkItem
from ._app_check import (EntryPoints, SubmissionRefused, check_app, explain_refusal,
                         server_hint)
from ._credentials import find_authenticator, warn_if_insecure
from ._rpc import (BATCH_STATE_INIT, BoincRpcError, JobInput, JobRequest, JobStatus,
                   RemoteError, RpcTransportError, SubmitClient, job_file_name)
from ._data_files import (DataFileError, check_disk_bound, data_digest, data_inputs,
                          input_template_with, read_as_named, split_call)
from .calls import check_batch_name, encode_call, encode_input, new_batch_name
from .outcomes import WorkunitFailed, stderr_excerpt

log = logging.getLogger("boinc_pymw.backends.boinc.remote")

#: largest output.json fetched (volunteer data)
MAX_OUTPUT_BYTES = 16 * 1024 * 1024
#: error words of query_batch's job details (submit_rpc_handler.php show_job_details)
ERROR_BITS = {"couldnt_send_result": 1, "too_many_error_results": 2,
              "too_many_success_results": 4, "too_many_total_results": 8,
              "cancelled": 16, "no_canonical_result": 32}
#: input files per upload_files request (PHP's max_file_uploads is 20 by default)
UPLOADS_PER_REQUEST = 16
#: bytes of data files per upload_files request (PHP's post_max_size is 8 MB by default)
UPLOAD_BYTES_PER_REQUEST = 6 * 1024 * 1024


class RemoteSubmitError(RemoteError):
    """A call could not be submitted to the project (after retries, or refused)."""


def part_name(batch: str, index: int) -> str:
    """BOINC batch name of part ``index`` of a Master's batch."""
    return batch if index == 0 else f"{batch}#{index}"


def job_name(batch: str, index: int, data: bytes) -> str:
    """Job (workunit) name of call ``index``: fixed by the call's input."""
    return f"{batch}_{index}_{hashlib.md5(data).hexdigest()[:10]}"


def parse_job_name(batch: str, name: str) -> Optional[tuple]:
    """(index, input digest) of one of this batch's job names, else None."""
    if not name.startswith(batch + "_"):
        return None
    index, sep, digest = name[len(batch) + 1:].partition("_")
    if not sep or not index.isdigit() or len(digest) != 10:
        return None
    return int(index), digest


@dataclass
class _Part:
    index: int
    name: str
    id: int
    state: int
    errors_seen: int = 0      # jobs in error at the last detailed query_batch


@dataclass(eq=False)
class _Call:
    """One call on its way: ``job_id`` 0 until the server listed its job."""

    index: int
    name: str
    item: WorkItem
    data: bytes = b""
    part: Optional[_Part] = None
    job_id: int = 0
    attempts: int = 0
    uncertain: bool = False
    not_before: float = 0.0
    data_files: tuple = ()    # _data_files.DataInput: uploaded, then inputs of the job


class RemoteBoincBackend(Backend):
    """Run each call as a job of a remote BOINC project (see module docstring)."""

    name = "boinc"
    default_chunksize = 1
    #: submit_task(data_files=...): uploaded with job_file.php, inputs of the job
    data_files = "copy"

    def __init__(self, workers: Optional[int] = None, *, url: str, app: str = "boinc_pymw",
                 batch: Optional[str] = None, authenticator: Optional[str] = None,
                 credentials: Optional[str] = None, keep_batch: bool = False,
                 poll_interval: float = 10.0, max_poll_interval: float = 120.0,
                 timeout: float = 60.0, retries: int = 3, backoff: float = 1.0,
                 submit_delay: float = 0.2,
                 submit_attempts: int = 5, unreachable_timeout: float = 1800.0,
                 inline_max: int = 64 * 1024, part_max_bytes: int = 4 * 1024 * 1024,
                 part_max_jobs: int = 2000, fetch_threads: int = 4,
                 download_url: Optional[str] = None,
                 check_entry_points: bool = True, project: Optional[str] = None,
                 **options: Any):
        super().__init__(workers, **options)
        if project:
            raise BoincPymwError("give either a project directory (-p, the Master on the "
                                 "server) or a project URL (--url, remote), not both")
        warn_if_insecure(url)
        self.client = SubmitClient(url, find_authenticator(url, authenticator, credentials),
                                   timeout=timeout, retries=retries, backoff=backoff)
        self.backoff = float(backoff)
        self.url = self.client.url
        self.app_name = app
        self.keep_batch = bool(keep_batch)
        self.poll_interval = float(poll_interval)
        self.max_poll_interval = max(float(max_poll_interval), self.poll_interval)
        self.submit_delay = float(submit_delay)
        self.submit_attempts = int(submit_attempts)
        self.unreachable_timeout = float(unreachable_timeout)
        self.inline_max = int(inline_max)
        self.part_max_bytes = int(part_max_bytes)
        self.part_max_jobs = int(part_max_jobs)
        self.fetch_threads = max(1, int(fetch_threads))

        self.facts = check_app(self.client, app)               # fails fast
        self.entry_points = EntryPoints(self.client, app, self.facts.version_num,
                                        download_url) if check_entry_points else None

        self._lock = threading.Lock()
        self._send_lock = threading.Lock()     # held while calls are being submitted
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._closed = False
        self._next_index = 0
        self._unsent: list = []                 # _Call, not on the server yet
        self._pending: dict = {}                # job name -> _Call on the server
        self._abort: set = set()                # job names to abort
        self._settled: set = set()              # job names fetched, failed or cancelled
        self._unsettled_errors = 0              # calls ended by our errors, not the job's
        self._existing: dict = {}               # index -> (job name, job id, part)
        self._send_after = 0.0
        self._app_templates: Optional[tuple] = None   # (input template, reserved names, disk bound)
        self.fraction_done = 0.0
        self.retired = False

        generated = batch is None
        self.batch, self.parts = self._open_batch(batch)
        if generated:
            print(f"boinc_pymw: batch {self.batch} on {self.url} (reattach with "
                  f"--batch {self.batch})", file=sys.stderr)
        log.info("batch %s of app %s on %s: %s, %d jobs already there", self.batch, app,
                 self.url, "reattached" if self._existing else "new", len(self._existing))
        self._thread = threading.Thread(target=self._loop, name=f"boinc-remote-{self.batch}",
                                        daemon=True)
        self._thread.start()

    # -- command line ----------------------------------------------------------------------------
    @classmethod
    def add_arguments(cls, group) -> None:
        """Remote options, added to the BOINC argument group by BoincBackend."""
        group.add_argument("--url", default=None,
                           help="BOINC project URL: submit remotely through its web RPCs "
                                "instead of its database (-i boinc)")
        group.add_argument("--authenticator", default=None,
                           help="account authenticator for --url (default: "
                                "$BOINC_PYMW_AUTHENTICATOR, then the credentials file)")
        group.add_argument("--credentials", default=None, metavar="FILE",
                           help="credentials file (mode 600) with the authenticator for "
                                "--url (default ~/.config/boinc_pymw/credentials)")
        group.add_argument("--keep-batch", action="store_true", default=None,
                           help="with --url: do not retire the batch at shutdown")

    @classmethod
    def options_from_args(cls, args) -> dict:
        options = {}
        for key in ("url", "authenticator", "credentials", "keep_batch"):
            value = getattr(args, key, None)
            if value is not None:
                options[key] = value
        return options

    # -- the batch -------------------------------------------------------------------------------
    def _open_batch(self, batch: Optional[str]) -> tuple:
        """(batch name, parts): an existing batch's parts and jobs, or a new part 0."""
        if batch is not None and str(batch).isdigit():
            info = self._query_part(batch_id=int(batch))
            if info is not None:
                batch = info.name.split("#", 1)[0]
        name = check_batch_name(batch if batch is not None else new_batch_name())
        parts = []
        while True:
            info = self._query_part(batch_name=part_name(name, len(parts)))
            if info is None:
                break
            if info.app_name != self.app_name:
                raise SubmissionRefused(f"batch {info.name} on {self.url} runs app "
                                        f"{info.app_name}, not {self.app_name}")
            part = _Part(len(parts), info.name, info.id, info.state)
            parts.append(part)
            for job in info.jobs:
                parsed = parse_job_name(name, job.name)
                if parsed is not None:
                    self._existing[parsed[0]] = (job.name, job.id, part)
        self.reattached = bool(parts)
        if not parts:
            parts.append(self._create_part(name, 0))
        return name, parts

    def _query_part(self, batch_id: Optional[int] = None, batch_name: Optional[str] = None):
        try:
            return self.client.query_batch(batch_id=batch_id, batch_name=batch_name,
                                           job_details=False)
        except BoincRpcError as exc:
            if exc.message == "no such batch":
                return None
            if exc.message.startswith("not owner"):
                raise SubmissionRefused(f"batch {batch_name or batch_id} on {self.url} "
                                        f"belongs to another account: choose another "
                                        f"batch name") from None
            raise explain_refusal(exc, self.app_name) from None

    def _create_part(self, batch: str, index: int) -> _Part:
        """create_batch for part ``index``; after a lost reply, the server says
        whether it was made (it is looked up by name before trying again)."""
        name = part_name(batch, index)
        try:
            batch_id = self.client.create_batch(self.app_name, name)
        except RpcTransportError:
            info = self._query_part(batch_name=name)
            if info is None:
                raise
            return _Part(index, name, info.id, info.state)
        except BoincRpcError as exc:
            raise explain_refusal(exc, self.app_name) from None
        return _Part(index, name, batch_id, BATCH_STATE_INIT)

    # -- work ------------------------------------------------------------------------------------
    def submit(self, items: Sequence[WorkItem]) -> None:
        if self._closed:
            raise RuntimeError("cannot submit to a BOINC back end after shutdown")
        calls, known = [], []
        with self._lock:
            try:
                for item in items:
                    index = self._next_index
                    self._next_index += 1
                    try:
                        job, data_files = self._encode(item)
                        if self.entry_points is not None:
                            self.entry_points.check(job["function"])
                        data = encode_input(job)
                    except Exception as exc:   # not JSON, not shipped: this call fails
                        item.set_exception(exc)
                        continue
                    name = job_name(self.batch, index, data_digest(data, data_files))
                    existing = self._existing.get(index)
                    if existing is not None:
                        if existing[0] != name:
                            raise BoincPymwError(
                                f"batch {self.batch}: call {index} differs from the job "
                                f"{existing[0]} submitted before; use a new batch name, or "
                                f"submit the same calls in the same order to reattach")
                        known.append(_Call(index, name, item, part=existing[2],
                                           job_id=existing[1]))
                    else:
                        calls.append(_Call(index, name, item, data, data_files=data_files))
            except BaseException as exc:
                for item in items:
                    item.set_exception(exc)
                raise
            for call in known:
                self._pending[call.name] = call
            if calls and not self._unsent:
                self._send_after = time.monotonic() + self.submit_delay
            self._unsent.extend(calls)
            for call in known + calls:
                call.item.future.add_done_callback(self._on_done_callback(call))
        self._wake.set()

    def _encode(self, item: WorkItem) -> tuple:
        """(job document, data files) of one call; the data files of
        submit_task(data_files=...) are checked against the app's templates."""
        fn, args, kwargs, files = split_call(item)
        if not files:
            return encode_call(item), ()
        from ...worker import encode_task

        template, reserved, disk_bound = self._templates()
        inputs = data_inputs(files, reserved)
        check_disk_bound(inputs, disk_bound)
        return encode_task(fn, args, kwargs), inputs

    def _templates(self) -> tuple:
        """The app's input template text, the open names of its own files and its
        disk bound (get_templates, asked once)."""
        if self._app_templates is None:
            import xml.etree.ElementTree as ET

            from ._data_files import disk_bound_of, open_names

            try:
                templates = self.client.get_templates(self.app_name)
            except BoincRpcError as exc:
                raise explain_refusal(exc, self.app_name) from None
            texts = [ET.tostring(templates.find(tag), encoding="unicode")
                     for tag in ("input_template", "output_template")]
            self._app_templates = (texts[0], open_names(texts[0], "input_template") |
                                   open_names(texts[1], "output_template"),
                                   disk_bound_of(texts[0]))
        return self._app_templates

    def _on_done_callback(self, call: _Call):
        def callback(future) -> None:
            if not future.cancelled():
                return
            with self._lock:
                if call in self._unsent:
                    self._unsent.remove(call)
                elif self._pending.pop(call.name, None) is not None:
                    self._abort.add(call.name)
            self._wake.set()
        return callback

    def cancel(self, item: WorkItem) -> bool:
        return item.future.cancel()       # the done callback aborts the job

    def cancel_batch(self) -> None:
        """Abort every job of the batch (all parts); pending futures are cancelled."""
        with self._send_lock:          # no submission half-way while the batch is aborted
            with self._lock:
                items = [c.item for c in list(self._pending.values()) + self._unsent]
            for item in items:
                item.future.cancel()
            for part in list(self.parts):
                self.client.abort_batch(part.id)
            with self._lock:
                self._settled.update(name for name, _id, _part in self._existing.values())
                self._abort.clear()

    # -- the sender and poller thread ------------------------------------------------------------
    def _loop(self) -> None:
        interval = self.poll_interval
        # a reattached batch may be finished already: ask at once
        next_poll = time.monotonic() + (0 if self.reattached else interval)
        unreachable_since = None
        while True:
            try:
                self._send_due()
                self._flush_aborts()
            except Exception as exc:     # a bug must not leave futures waiting silently
                log.exception("batch %s: sending failed", self.batch)
                self._fail_unsent(exc)
            now = time.monotonic()
            with self._lock:
                pending = bool(self._pending)
            if pending and now >= next_poll:
                try:
                    moved = self._poll()
                    unreachable_since = None
                except RemoteError as exc:
                    moved = 0
                    unreachable_since = unreachable_since or now
                    log.warning("batch %s: asking %s for progress failed: %s", self.batch,
                                self.url, exc)
                    if now - unreachable_since > self.unreachable_timeout:
                        self._fail_pending(RemoteError(
                            f"{self.url} did not answer for {self.unreachable_timeout:g} s "
                            f"({exc}); the jobs may still run: reattach later with "
                            f"--batch {self.batch}"))
                except Exception as exc:  # a bug must not leave futures waiting forever
                    moved = 0
                    log.exception("batch %s: collecting results failed", self.batch)
                    self._fail_pending(exc)
                interval = self.poll_interval if moved else \
                    min(interval * 1.5, self.max_poll_interval)
                next_poll = time.monotonic() + interval
            with self._lock:
                idle = not self._pending and not self._unsent and not self._abort
                waits = [next_poll] if self._pending else []
                if self._unsent:
                    waits.append(max(self._send_after,
                                     min(c.not_before for c in self._unsent)))
            if self._stop.is_set() and idle:
                break
            self._wake.wait(max(0.0, min(waits) - time.monotonic()) if waits else None)
            self._wake.clear()
        self._retire_if_done()

    # sending -------------------------------------------------------------------------------------
    def _send_due(self) -> None:
        with self._send_lock:
            self._send_due_locked()

    def _send_due_locked(self) -> None:
        now = time.monotonic()
        with self._lock:
            if not self._unsent or (now < self._send_after and not self._stop.is_set()):
                return
            due = [c for c in self._unsent if c.not_before <= now]
            if not due:
                return
            for c in due:
                self._unsent.remove(c)
        for chunk in self._chunks(due):
            self._submit_chunk(chunk)

    def _chunks(self, calls: list) -> list:
        chunks, current, size = [], [], 0
        for call in calls:
            cost = len(call.data) if len(call.data) <= self.inline_max else 100
            if current and (size + cost > self.part_max_bytes
                            or len(current) >= self.part_max_jobs):
                chunks.append(current)
                current, size = [], 0
            current.append(call)
            size += cost
        if current:
            chunks.append(current)
        return chunks

    def _submit_chunk(self, chunk: list) -> None:
        try:
            chunk = self._upload_data_files(chunk)
            if not chunk:
                return
            inputs = self._stage_inputs(chunk)
            part = self._current_part()
        except RemoteError as exc:
            self._retry_or_fail(chunk, exc)
            return
        jobs = [self._job_request(c, inputs[c.name]) for c in chunk]
        try:
            self.client.submit_batch(self.app_name, part.id, jobs)
        except RemoteError as exc:
            self._after_failed_submit(part, chunk, exc)
            return
        part.state = 1   # in progress: the next calls go to a new part
        self._register(chunk, part, {})
        log.info("batch %s: %d jobs submitted in %s (id %d)", self.batch, len(chunk),
                 part.name, part.id)

    def _job_request(self, call: _Call, job_input: JobInput) -> JobRequest:
        if not call.data_files:
            return JobRequest(call.name, (job_input,))
        template = input_template_with(self._templates()[0], call.data_files,
                                       f"app {self.app_name}'s input template")
        return JobRequest(call.name, (job_input, *(JobInput("local_staged", d.physical_name)
                                                   for d in call.data_files)), template)

    def _upload_data_files(self, chunk: list) -> list:
        """Upload the chunk's data files the project does not have yet (job_file.php,
        a few per request); returns the calls that can go on. A call whose data
        file can no longer be read as it was named fails here, before any job of
        it exists."""
        wanted: dict = {}
        for call in chunk:
            for d in call.data_files:
                wanted.setdefault(d.physical_name, (d, []))[1].append(call)
        if not wanted:
            return chunk
        names = sorted(wanted)
        absent = [names[i] for i in self.client.query_files(names)]
        failed: dict = {}
        group, size = [], 0
        for name in absent + [None]:
            if name is not None:
                d, calls = wanted[name]
                try:
                    data = read_as_named(d)
                except DataFileError as exc:
                    for call in calls:
                        failed.setdefault(id(call), (call, exc))
                    continue
            if group and (name is None or len(group) >= UPLOADS_PER_REQUEST
                          or size + len(data) > UPLOAD_BYTES_PER_REQUEST):
                self.client.upload_files(group)
                group, size = [], 0
            if name is not None:
                group.append((name, data))
                size += len(data)
        if failed:
            with self._lock:
                self._unsettled_errors += len(failed)
            for call, exc in failed.values():
                call.item.set_exception(exc)
        return [c for c in chunk if id(c) not in failed]

    def _stage_inputs(self, chunk: list) -> dict:
        """job name -> JobInput; big inputs are uploaded (job_file.php) first."""
        inputs, big = {}, {}
        for call in chunk:
            if len(call.data) <= self.inline_max:
                inputs[call.name] = JobInput("inline", call.data.decode("ascii"))
            else:
                physical = job_file_name(call.data)
                big[physical] = call.data
                inputs[call.name] = JobInput("local_staged", physical)
        if big:
            names = sorted(big)
            absent = [names[i] for i in self.client.query_files(names)]
            for start in range(0, len(absent), UPLOADS_PER_REQUEST):
                self.client.upload_files([(n, big[n]) for n in
                                          absent[start:start + UPLOADS_PER_REQUEST]])
        return inputs

    def _current_part(self) -> _Part:
        part = self.parts[-1]
        if part.state != BATCH_STATE_INIT:
            part = self._create_part(self.batch, len(self.parts))
            self.parts.append(part)
        return part

    def _after_failed_submit(self, part: _Part, chunk: list, exc: RemoteError) -> None:
        """submit_batch failed: the jobs that exist anyway are kept, the others sent again
        (or failed when the server refused them for sure)."""
        try:
            info = self.client.query_batch(batch_id=part.id, job_details=False)
        except RemoteError as exc2:
            log.warning("batch %s: submit failed (%s) and checking failed too (%s)",
                        self.batch, exc, exc2)
            for call in chunk:
                call.uncertain = True
            self._retry_or_fail(chunk, exc)
            return
        part.state = info.state
        created = {job.name: job.id for job in info.jobs}
        made = [c for c in chunk if c.name in created]
        self._register(made, part, created)
        missing = [c for c in chunk if c.name not in created]
        if not missing:
            log.info("batch %s: submit of %d jobs reported %s, yet all exist", self.batch,
                     len(chunk), exc)
            return
        if isinstance(exc, RpcTransportError):
            for call in missing:
                call.uncertain = True
        self._retry_or_fail(missing, exc)

    def _retry_or_fail(self, calls: list, exc: RemoteError) -> None:
        definite = isinstance(exc, (BoincRpcError, SubmissionRefused)) and \
            not any(c.uncertain for c in calls)
        again, failed = [], []
        for call in calls:
            call.attempts += 1
            (failed if definite or call.attempts >= self.submit_attempts else again).append(call)
        if failed:
            hint = server_hint(exc.message) if isinstance(exc, BoincRpcError) else ""
            error = RemoteSubmitError(
                f"batch {self.batch}: {len(failed)} call(s) not submitted to {self.url} "
                f"after {failed[0].attempts} attempt(s): {exc}{hint}")
            with self._lock:
                self._unsettled_errors += len(failed)
            for call in failed:
                call.item.set_exception(error)
        if again:
            delay = min(self.backoff * 2.0 ** (again[0].attempts - 1), 60.0)
            log.warning("batch %s: submitting %d call(s) failed (%s); trying again in %.0f s",
                        self.batch, len(again), exc, delay)
            with self._lock:
                for call in again:
                    call.not_before = time.monotonic() + delay
                    if not call.item.future.cancelled():
                        self._unsent.append(call)

    def _register(self, calls: list, part: _Part, ids: dict) -> None:
        with self._lock:
            for call in calls:
                call.part, call.job_id, call.data = part, ids.get(call.name, 0), b""
                self._existing[call.index] = (call.name, call.job_id, part)
                if call.item.future.cancelled():
                    self._abort.add(call.name)
                else:
                    self._pending[call.name] = call

    def _fail_unsent(self, exc: BaseException) -> None:
        with self._lock:
            calls, self._unsent = self._unsent, []
            self._unsettled_errors += len(calls)
        for call in calls:
            call.item.set_exception(exc)

    def _flush_aborts(self) -> None:
        with self._lock:
            names = sorted(self._abort)
        if not names:
            return
        try:
            self.client.abort_jobs(names)
        except RemoteError as exc:
            log.warning("batch %s: aborting %d jobs failed (%s); trying again",
                        self.batch, len(names), exc)
            return
        with self._lock:
            self._abort.difference_update(names)
            self._settled.update(names)
        log.info("batch %s: aborted %d jobs", self.batch, len(names))

    # polling -------------------------------------------------------------------------------------
    def _poll(self) -> int:
        """Ask for the parts with jobs awaited; complete what is done. Returns how many.

        A plain query_batch lists every job with its canonical instance (done when
        set); the detailed one, which costs the server a query per job, is asked
        only when the batch counts more jobs in error than seen before."""
        with self._lock:
            parts = {c.part.id: c.part for c in self._pending.values()}
        moved = 0
        done_fraction = []
        for part in parts.values():
            info = self.client.query_batch(batch_id=part.id, job_details=False)
            if info.nerror_jobs > part.errors_seen:
                info = self.client.query_batch(batch_id=part.id, job_details=True)
                part.errors_seen = sum(1 for job in info.jobs if job.status == "error")
            done_fraction.append(info.fraction_done)
            finished = []
            for job in info.jobs:
                with self._lock:
                    call = self._pending.get(job.name)
                if call is None:
                    continue
                call.job_id = job.id
                if not job.status and job.canonical_instance_id:
                    job.status = "done"
                if job.status in ("done", "error"):
                    finished.append((call, job))
            moved += self._complete_all(finished)
        if done_fraction:
            self.fraction_done = sum(done_fraction) / len(done_fraction)
        return moved

    def _complete_all(self, finished: list) -> int:
        """Fetch finished jobs, ``fetch_threads`` at a time: each costs two requests
        (query_job, get_output.php), so a distant server's latency adds up."""
        if len(finished) < 2 or self.fetch_threads < 2:
            return sum(self._complete(call, job) for call, job in finished)
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(min(self.fetch_threads, len(finished)),
                                thread_name_prefix=f"boinc-remote-fetch-{self.batch}") as pool:
            return sum(pool.map(lambda pair: self._complete(*pair), finished))

    def _complete(self, call: _Call, job: JobStatus) -> int:
        """Settle one finished job's future: its value, the task's exception, or
        WorkunitFailed; a transport failure leaves it for the next poll."""
        settled = True
        try:
            if job.status == "done":
                ok, value = self._fetch(call, job)
            else:
                ok, value = False, self._failure(call, job)
        except RpcTransportError as exc:
            if exc.retryable:
                log.warning("batch %s: fetching %s failed (%s); trying again later",
                            self.batch, call.name, exc)
                return 0
            ok, value, settled = False, exc, False
        except RemoteError as exc:
            ok, value, settled = False, exc, False
        with self._lock:
            self._pending.pop(call.name, None)
            if settled:
                self._settled.add(call.name)
            else:
                self._unsettled_errors += 1
        if call.item.mark_started():
            (call.item.set_result if ok else call.item.set_exception)(value)
        return 1

    def _fetch(self, call: _Call, job: JobStatus) -> tuple:
        """(True, value) or (False, the task's exception) from the canonical output."""
        instances = self.client.query_job(job.id)
        canonical = next((i for i in instances if i.id == job.canonical_instance_id), None)
        if canonical is None:
            raise RpcTransportError(f"job {call.name}: its canonical instance "
                                    f"{job.canonical_instance_id} is not listed yet")
        try:
            data = self.client.get_output_file(canonical.name, self.facts.output_file_num,
                                               MAX_OUTPUT_BYTES)
        except BoincRpcError as exc:
            raise RemoteError(
                f"job {call.name}: its output is not on the project any more ({exc.message}); "
                f"the project's file_deleter must run with --dont_delete_batches for "
                f"remote batches") from None
        from ...worker import decode_output

        try:
            document = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            return False, BoincPymwError(f"job {call.name}: output.json is not valid JSON: "
                                         f"{exc}")
        try:
            return True, decode_output(document)
        except Exception as exc:      # the task raised (or the document is malformed)
            return False, exc

    def _failure(self, call: _Call, job: JobStatus) -> WorkunitFailed:
        from ...boinc.states import describe_error_mask

        mask = 0
        for word in job.errors:
            mask |= ERROR_BITS.get(word, 0)
        excerpt, detail = "", ""
        try:
            completed = self.client.query_completed_job(call.name)
            mask = completed.error_mask or mask
            excerpt = stderr_excerpt(completed.stderr_out)
        except RemoteError as exc:    # 1.4.7's query_completed_job fails for some jobs
            log.info("batch %s: no details for failed job %s: %s", self.batch, call.name, exc)
        if job.exit_statuses:
            detail = "exit status " + ", ".join(str(s) for s in job.exit_statuses)
        return WorkunitFailed(call.name, mask, describe_error_mask(mask), detail, excerpt)

    def _fail_pending(self, exc: BaseException) -> None:
        with self._lock:
            calls = list(self._pending.values())
            self._pending.clear()
            self._unsettled_errors += len(calls)
        for call in calls:
            call.item.set_exception(exc)

    # -- end ---------------------------------------------------------------------------------------
    def _retire_if_done(self) -> None:
        if self.keep_batch:
            log.info("batch %s kept on %s (keep_batch)", self.batch, self.url)
            return
        with self._lock:
            names = {name for name, _id, _part in self._existing.values()}
            unsettled = names - self._settled
            errors = self._unsettled_errors
        if unsettled or errors:
            log.info("batch %s kept on %s: %d of its jobs not fetched, %d calls failed "
                     "(reattach with --batch %s)", self.batch, self.url, len(unsettled),
                     errors, self.batch)
            return
        for part in self.parts:
            try:
                self.client.retire_batch(part.id)
            except RemoteError as exc:
                log.warning("batch %s: retiring %s failed: %s", self.batch, part.name, exc)
                return
        log.info("batch %s retired on %s", self.batch, self.url)
        self.retired = True

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        self._closed = True
        if cancel_futures:
            # calls whose submission is on its way are listed once it ends: wait for it
            with self._send_lock:
                with self._lock:
                    items = [c.item for c in list(self._pending.values()) + self._unsent]
                for item in items:
                    item.future.cancel()
                if not wait:     # the aborts must reach the project even if we exit now
                    self._flush_aborts()
        self._stop.set()
        self._wake.set()
        if wait:
            self._thread.join()

    def status(self) -> dict:
        with self._lock:
            pending, unsent = len(self._pending), len(self._unsent)
        return {"workers": self.workers, "batch": self.batch, "url": self.url,
                "app": self.app_name, "parts": [p.name for p in self.parts],
                "batch_ids": [p.id for p in self.parts], "pending_jobs": pending,
                "unsent_calls": unsent, "fraction_done": self.fraction_done,
                "reattached": self.reattached}
