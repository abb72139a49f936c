"""HTCondor back end (``-i condor``): each task is a vanilla-universe job.

    Backend.submit(items)              one call = one cluster (Master.map: one per map)
      -> encode_task -> batch_dir/task_i/input.json   (_submit)
      -> Schedd.submit(job.sub, itemdata)             htcondor2 bindings
    poll thread, every poll_interval seconds:
      Schedd.query(BoincPymwRun == "<run>")  RUNNING -> future running
                                             HELD    -> CondorJobFailed(HoldReason), job removed
      jobs gone from the queue -> Schedd.history -> output.json -> future  (_jobs)

Tasks travel as JSON job documents (``boinc_pymw.worker`` format), so the
function must be importable on the execute machine: install boinc-pymw (and
your module) there, or ship it with ``--condor-code``.

Tested without a pool (none can run where this was written): see README.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import os
import tempfile
import threading
import uuid
from concurrent.futures import wait as wait_futures
from pathlib import Path
from typing import Any, Optional, Sequence

from ...errors import BoincPymwError
from ..base import Backend, WorkItem, run_chunk
from ..task_directory import run_in_task_directory
from ._outcome import CondorJobFailed

DEFAULT_POLL = 5.0


def import_htcondor():
    """The HTCondor bindings: ``htcondor2`` (PyPI htcondor >= 24), else v1 ``htcondor``."""
    try:
        import htcondor2 as htcondor
    except ImportError:
        try:
            import htcondor  # type: ignore[no-redef]
        except ImportError:
            raise BoincPymwError(
                "the HTCondor back end needs the htcondor Python bindings: "
                "pip install 'boinc-pymw[condor]'") from None
    return htcondor


def encode_item(item: WorkItem) -> dict:
    """The worker job document for one work item (chunks of Master.map included)."""
    from ...worker.codec import encode_task, function_reference
    from . import _chunk

    if item.fn is run_in_task_directory:  # its data files go by file transfer (data_paths)
        fn, args, kwargs, _files = item.args
        return encode_task(fn, args, kwargs)
    if item.fn is run_chunk:
        fn, chunk = item.args
        return encode_task(_chunk.REFERENCE,
                           [function_reference(fn), [list(args) for args in chunk]])
    return encode_task(item.fn, item.args, item.kwargs)


def data_paths(item: WorkItem) -> tuple:
    """The PyMW data files of ``item`` (Master.submit_task(data_files=...)):
    HTCondor transfers them into the job's scratch directory, its current one."""
    if item.fn is run_in_task_directory:
        return tuple(f.path for f in item.args[3])
    return ()


def by_data_files(items: Sequence[WorkItem]) -> list:
    """``[(data paths, items), ...]``: the jobs of one cluster share one
    transfer_input_files, so items with other data files make other clusters."""
    groups: dict = {}
    for item in items:
        groups.setdefault(data_paths(item), []).append(item)
    return list(groups.items())


def prepare_cluster(batch_dir: Path, items: Sequence[WorkItem], base, run: str):
    """Everything for one cluster short of submitting it: returns (the items
    that became jobs, in ProcId order; submit description text; itemdata).
    Items that cannot become jobs (a lambda, non-JSON arguments) fail here."""
    from ._submit import cluster_settings, write_batch

    jobs, documents = [], []
    for item in items:
        try:
            documents.append(encode_item(item))
            jobs.append(item)
        except (TypeError, ValueError) as exc:
            if item.mark_started():
                item.set_exception(exc)
    if not jobs:
        return [], "", []
    settings = cluster_settings(base, run, max((item.timeout or 0) for item in jobs))
    itemdata = write_batch(batch_dir, [(item.id, doc) for item, doc in zip(jobs, documents)],
                           settings)
    return jobs, (batch_dir / "job.sub").read_text(), itemdata


class CondorBackend(Backend):
    """Runs each work item as an HTCondor job (see the module docstring)."""

    name = "condor"
    data_files = "copy"  # by HTCondor's file transfer, from their paths here

    def __init__(self, workers: Optional[int] = None, *, directory: Optional[str] = None,
                 python: str = "python3", code: Sequence[str] = (),
                 requirements: Optional[str] = None, submit_commands: Optional[dict] = None,
                 schedd: Optional[str] = None, poll_interval: float = DEFAULT_POLL,
                 keep_files: bool = False, **options: Any):
        from ._jobs import JobTracker
        from ._submit import JobSettings

        super().__init__(workers=workers, **options)
        for path in code:
            if not os.path.exists(path):
                raise FileNotFoundError(f"--condor-code path not found: {path}")
        if poll_interval <= 0:
            raise ValueError("poll_interval must be positive")
        self._htcondor = import_htcondor()
        self._schedd = self._locate_schedd(schedd)
        self._settings = JobSettings(python=python, code=tuple(code), requirements=requirements,
                                     extra=dict(submit_commands or {}))
        self._own_root = directory is None
        root = Path(directory) if directory else Path(
            tempfile.mkdtemp(prefix="boinc_pymw_condor_", dir=os.getcwd()))
        if any(c.isspace() or c == "," for c in str(root.resolve())):
            raise ValueError(f"the HTCondor job directory may not contain spaces or commas "
                             f"(queue item lists split on them): {root}; choose --condor-dir")
        root.mkdir(parents=True, exist_ok=True)
        self._root = root.resolve()
        self._run = uuid.uuid4().hex
        self._batches = itertools.count()
        self._tracker = JobTracker(keep_files=keep_files)
        self._keep_files = keep_files
        self.poll_interval = poll_interval
        self._lock = threading.Lock()
        self._closed = False
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._poll_error: Optional[str] = None

    def _locate_schedd(self, name: Optional[str]):
        htcondor = self._htcondor
        try:
            if name:
                ad = htcondor.Collector().locate(htcondor.DaemonTypes.Schedd, name)
                return htcondor.Schedd(ad)
            return htcondor.Schedd()
        except Exception as exc:  # the bindings raise their own HTCondorException
            where = f"schedd {name!r}" if name else "the local schedd"
            raise BoincPymwError(
                f"cannot reach {where} of an HTCondor pool ({exc}); run on an HTCondor "
                f"submit machine or pass --condor-schedd NAME") from None

    # -- command line -------------------------------------------------------
    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group("HTCondor back end (-i condor)")
        group.add_argument("--condor-dir", metavar="DIR",
                           help="where job files live (default: a new boinc_pymw_condor_* "
                                "directory here, removed at shutdown)")
        group.add_argument("--condor-python", default="python3", metavar="PYTHON",
                           help="Python on the execute machines: a name found through "
                                "/usr/bin/env, or an absolute path (default python3)")
        group.add_argument("--condor-code", action="append", default=[], metavar="PATH",
                           help="a file, directory or zip of your code to send with every "
                                "job and put on the worker's sys.path (repeatable)")
        group.add_argument("--condor-requirements", metavar="EXPR",
                           help="a Requirements expression (default: any machine)")
        group.add_argument("--condor-submit", action="append", default=[], metavar="KEY=VALUE",
                           help="an extra submit command, e.g. request_memory=2GB (repeatable)")
        group.add_argument("--condor-schedd", metavar="NAME", help="schedd name (default: local)")
        group.add_argument("--condor-poll", type=float, default=DEFAULT_POLL, metavar="SECONDS",
                           help=f"seconds between queue checks (default {DEFAULT_POLL:g})")
        group.add_argument("--condor-keep-files", action="store_true",
                           help="keep job directories (input, output, stderr) after use")

    @classmethod
    def options_from_args(cls, args: argparse.Namespace) -> dict:
        extra = {}
        for pair in getattr(args, "condor_submit", None) or []:
            key, sep, value = pair.partition("=")
            if not sep or not key.strip():
                raise ValueError(f"--condor-submit wants KEY=VALUE, not {pair!r}")
            extra[key.strip()] = value.strip()
        return {
            "directory": getattr(args, "condor_dir", None),
            "python": getattr(args, "condor_python", None) or "python3",
            "code": tuple(getattr(args, "condor_code", None) or ()),
            "requirements": getattr(args, "condor_requirements", None),
            "submit_commands": extra,
            "schedd": getattr(args, "condor_schedd", None),
            "poll_interval": getattr(args, "condor_poll", None) or DEFAULT_POLL,
            "keep_files": bool(getattr(args, "condor_keep_files", False)),
        }

    # -- work ---------------------------------------------------------------
    def submit(self, items: Sequence[WorkItem]) -> None:
        for data, group in by_data_files(items):
            self._submit_cluster(group, data)

    def _submit_cluster(self, items: Sequence[WorkItem], data: tuple) -> None:
        settings = dataclasses.replace(self._settings, data=data) if data else self._settings
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot schedule new work after shutdown")
            batch_dir = self._root / f"batch_{next(self._batches)}"
        try:
            jobs, text, itemdata = prepare_cluster(batch_dir, items, settings, self._run)
            if not jobs:
                return
            result = self._schedd.submit(self._htcondor.Submit(text), itemdata=iter(itemdata))
        except Exception as exc:
            for item in items:
                if item.mark_started():
                    item.set_exception(BoincPymwError(
                        f"could not submit the HTCondor jobs: {type(exc).__name__}: {exc}"))
            return
        self._tracker.add(result.cluster(), [(item, batch_dir / f"task_{i}")
                                             for i, item in enumerate(jobs)])
        self._ensure_thread()

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._poll_loop, daemon=True,
                                                name="boinc_pymw-condor-poll")
                self._thread.start()

    def _poll_loop(self) -> None:
        while not self._stop.wait(self.poll_interval):
            try:
                self._poll_once()
            except Exception as exc:  # a schedd hiccup: try again next round
                self._poll_error = f"{type(exc).__name__}: {exc}"

    def _poll_once(self) -> None:
        if not len(self._tracker):
            return
        asked = self._tracker.keys()
        ads = self._schedd.query(
            constraint=f'BoincPymwRun == "{self._run}"',
            projection=["ClusterId", "ProcId", "JobStatus", "HoldReason", "HoldReasonCode"])
        to_remove, gone = self._tracker.see_queue(ads, asked)
        self._remove_jobs(to_remove, "boinc_pymw: held or cancelled")
        if gone:
            history = self._history(gone)
            for key in gone:
                self._tracker.finish(key, history.get(key))

    def _history(self, keys: list) -> dict:
        by_cluster: dict = {}
        for cluster, proc in keys:
            by_cluster.setdefault(cluster, []).append(proc)
        found = {}
        for cluster, procs in by_cluster.items():
            constraint = f"ClusterId == {cluster} && member(ProcId, {{{', '.join(map(str, procs))}}})"
            for ad in self._schedd.history(
                    constraint, ["ClusterId", "ProcId", "JobStatus", "ExitCode", "ExitBySignal",
                                 "ExitSignal", "RemoveReason"], match=len(procs)):
                found[(ad.get("ClusterId"), ad.get("ProcId"))] = ad
        return found

    def _remove_jobs(self, keys: list, reason: str) -> None:
        if not keys:
            return
        spec = [f"{cluster}.{proc}" for cluster, proc in keys]
        try:
            self._schedd.act(self._htcondor.JobAction.Remove, spec, reason)
        except Exception as exc:
            self._poll_error = f"could not remove jobs {spec}: {exc}"

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        with self._lock:
            self._closed = True
        if cancel_futures:
            for item in self._tracker.items():
                item.future.cancel()  # idle jobs; the poll thread removes them from the queue
        if wait:
            wait_futures([item.future for item in self._tracker.items()])
            if cancel_futures:
                try:
                    self._poll_once()  # take the cancelled jobs out of the queue now
                except Exception as exc:
                    self._poll_error = f"{type(exc).__name__}: {exc}"
            self._stop.set()
            if self._thread is not None:
                self._thread.join()
            if self._own_root and not self._keep_files:
                import shutil

                shutil.rmtree(self._root, ignore_errors=True)

    def status(self) -> dict:
        facts = {"workers": self.workers, "condor_jobs": len(self._tracker),
                 "condor_dir": str(self._root)}
        if self._poll_error:
            facts["condor_last_error"] = self._poll_error
        return facts


__all__ = ["CondorBackend", "CondorJobFailed", "import_htcondor", "encode_item", "prepare_cluster"]
