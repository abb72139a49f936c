"""``-i boinc-local``: the whole BOINC pipeline on one machine, no server.

The point is to debug a project's app, validator and assimilator before it
goes live: every stage below is the one BOINC mode uses, except that the
database, scheduler and volunteers are replaced by this process.

Data flow of one call::

    Master.submit / map --> WorkItem
        | encode_task -> <workdir>/download/<batch>_<n>.json    (as -i boinc)
        | submit_task's data files -> <workdir>/download/pymw_<md5>_<name>, more
        | inputs of the workunit, copied into each slot (as -i boinc, _data_files)
        v
    workunit from the app's templates (the project's templates/<app>_in and
    _out, or the ones install-app writes): input refs, output refs, quorum
        | replicas <wu>_0, <wu>_1, ... (target_nresults, more as BOINC's
        | transitioner would create them after errors or disagreement)
        v
    the real BOINC client (when installed) or our SlotRunner: each replica in
    a BOINC slot: launcher -> portable interpreter -> python -m boinc_pymw.worker
        | outputs <result>_r<rand>_<n> in the upload dir, stderr.txt
        v
    the project's Validator: check_set over the successful replicas
        -> canonical result, or more replicas, or an error_mask
        v
    the project's Assimilator.assimilate(wu, results, canonical)
        (default: daemons/result_store.py -> <workdir>/results_store)
        v
    store record -> outcome_from_record -> future    (the same code as -i boinc)

Reattach works as in BOINC mode: with the same ``batch`` (and workdir), a
call whose workunit already has a record completes from it without running.
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import logging
import os
import queue
import random
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Optional, Sequence

from ..._atomic import write_atomic
from ...errors import BoincPymwError
from ..base import Backend, WorkItem
from .calls import (changed_input_error, check_batch_name, encode_call, encode_input,
                    input_file_name, new_batch_name, workunit_name)
from .outcomes import outcome_from_record, stderr_excerpt
from .results_store import ResultsStore
from .server import BoincBackend

log = logging.getLogger("boinc_pymw.backends.boinc.local")

DEFAULT_VALIDATOR = "boinc_pymw.daemons.numeric_validator:NumericValidator"
DEFAULT_ASSIMILATOR = "boinc_pymw.daemons.result_store:ResultStoreAssimilator"
DEFAULT_QUORUM = 2
#: the batch id local workunits carry (the store group is batch_<id>)
LOCAL_BATCH_ID = 1


def load_class(reference) -> type:
    """A class from "package.module:Class" (or the class itself)."""
    if isinstance(reference, type):
        return reference
    module_name, sep, name = str(reference).partition(":")
    if not sep:
        raise BoincPymwError(f"class reference must look like 'package.module:Class', "
                             f"not {reference!r}")
    try:
        return getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as exc:
        raise BoincPymwError(f"cannot load {reference}: {exc}") from None


class LocalProject:
    """What a daemon needs of a project, without a database."""

    def __init__(self, path: Path, upload_dir: Path):
        self.path = str(path)
        self.upload_dir = str(upload_dir)
        self.fanout = 0
        self.config = _Config({"upload_dir": str(upload_dir), "uldl_dir_fanout": 0})

    @property
    def db(self):
        raise BoincPymwError("the local debug mode has no database: a validator or "
                             "assimilator hook used self.db")


class _Config(dict):
    def get(self, key, default=None):
        return super().get(key, default)


# -- templates ----------------------------------------------------------------------------
def _xml(text: str):
    from ...boinc.output_files import safe_xml

    return safe_xml(text)


def parse_input_template(text: str) -> tuple[list[dict], dict]:
    """(input file refs in order, workunit fields) of an input template."""
    from ...templates import TEMPLATE_WU_FIELDS

    root = _xml(text)
    workunit = root.find("workunit")
    if workunit is None:
        raise BoincPymwError("input template has no <workunit>")
    refs = []
    for ref in workunit.findall("file_ref"):
        copy = ref.find("copy_file") is not None
        open_name = (ref.findtext("open_name") or "").strip() or None
        if open_name is None and not copy:
            raise BoincPymwError("input template: a <file_ref> has no <open_name>")
        refs.append({"open_name": open_name, "copy_file": copy})
    if len(refs) != len(root.findall("file_info")):
        raise BoincPymwError("input template: <file_info> and <file_ref> counts differ")
    fields = {}
    for name, kind in TEMPLATE_WU_FIELDS.items():
        value = workunit.findtext(name)
        if value is not None and value.strip():
            fields[name] = kind(float(value)) if kind is int else kind(value)
    return refs, fields


def parse_output_template(text: str) -> list[dict]:
    """The output file refs of a result template (n-th ref <-> <OUTFILE_n/>)."""
    root = _xml(text)
    infos = root.findall("file_info")
    refs = []
    for n, ref in enumerate(root.findall("result/file_ref")):
        info = infos[n] if n < len(infos) else None
        max_nbytes = None
        if info is not None and info.findtext("max_nbytes"):
            max_nbytes = float(info.findtext("max_nbytes"))
        refs.append({"open_name": (ref.findtext("open_name") or "").strip() or None,
                     "copy_file": ref.find("copy_file") is not None,
                     "optional": ref.find("optional") is not None,
                     "no_validate": ref.find("no_validate") is not None,
                     "max_nbytes": max_nbytes})
    if not refs:
        raise BoincPymwError("result template has no <result><file_ref>")
    return refs


def result_xml_doc_in(result_name: str, outputs: list[dict], physical: list[str]) -> str:
    """``result.xml_doc_in`` as the transitioner's process_result_template makes it."""
    infos = "".join(
        f"<file_info><name>{name}</name><generated_locally/><upload_when_present/>"
        f"<max_nbytes>{ref['max_nbytes'] or 5e6:.0f}</max_nbytes>"
        f"<url>file_upload_handler</url></file_info>"
        for ref, name in zip(outputs, physical))
    refs = "".join(
        f"<file_ref><file_name>{name}</file_name><open_name>{ref['open_name'] or name}"
        f"</open_name>" + ("<copy_file/>" if ref["copy_file"] else "")
        + ("<optional/>" if ref["optional"] else "")
        + ("<no_validate/>" if ref["no_validate"] else "") + "</file_ref>"
        for ref, name in zip(outputs, physical))
    return f"{infos}<result><name>{result_name}</name>{refs}</result>"


def default_templates(quorum: int) -> tuple[str, str]:
    """The templates install-app writes, with the local quorum numbers."""
    from ...boinc.app_install import JOB_INPUT_NAME, JOB_OUTPUT_NAME
    from ...templates import InputFile, OutputFile, render_input_template, render_output_template

    return (render_input_template([InputFile(JOB_INPUT_NAME)], min_quorum=quorum,
                                  target_nresults=quorum, max_error_results=1,
                                  max_success_results=2 * quorum,
                                  max_total_results=2 * quorum + 1),
            render_output_template([OutputFile(JOB_OUTPUT_NAME)]))


# -- the back end ------------------------------------------------------------------------------
class BoincLocalBackend(Backend):
    """BOINC's pipeline on this machine: slots, validator, assimilator (module docstring)."""

    name = "boinc-local"
    default_chunksize = 1
    #: submit_task(data_files=...): copied inputs of the workunit, as with -i boinc
    data_files = "copy"

    def __init__(self, workers: Optional[int] = None, *, project: Optional[str] = None,
                 app: str = "boinc_pymw", batch: Optional[str] = None,
                 app_version: Optional[str] = None, runtime: Optional[str] = None,
                 code: Sequence[str] = (), quorum: Optional[int] = None,
                 validator: Any = DEFAULT_VALIDATOR, validator_args: Sequence[str] = (),
                 assimilator: Any = DEFAULT_ASSIMILATOR, assimilator_args: Sequence[str] = (),
                 workdir: Optional[str] = None, cache_dir: Optional[str] = None,
                 results_dir: Optional[str] = None, client: str = "auto",
                 requirements: Optional[str] = None, wheels: Sequence[str] = (), **options: Any):
        super().__init__(workers or os.cpu_count() or 1, **options)
        generated = batch is None
        self.batch = check_batch_name(batch or new_batch_name())
        self.app_name = app
        self.project_dir = Path(project).resolve() if project else None
        self.workdir = Path(workdir or Path(tempfile.gettempdir()) / "boinc_pymw_local"
                            / self.batch).resolve()
        self.download_dir = self.workdir / "download"
        self.download_dir.mkdir(parents=True, exist_ok=True)
        from ...local.slots import make_runner

        self.runner = make_runner(self.workdir / "client", client)
        self.local_project = LocalProject(self.workdir, self.runner.project_dir)
        self.input_template, self.output_template = self._templates(quorum)
        self.input_refs, self.wu_fields = parse_input_template(self.input_template)
        self.output_refs = parse_output_template(self.output_template)
        if len(self.input_refs) != 1:
            raise BoincPymwError(f"app {app}: the input template must have exactly one "
                                 f"input file (the job's input.json), not {len(self.input_refs)}")
        self._replication = self._replication_numbers()
        self.validator = self._daemon(validator, validator_args)
        self.assimilator = self._daemon(assimilator, assimilator_args,
                                        store=results_dir or str(self.workdir / "results_store"))
        store_dir = getattr(self.assimilator, "store_dir", None) or results_dir or \
            str(self.workdir / "results_store")
        from .results_store import batch_group

        self.store = ResultsStore(store_dir, batch_group(LOCAL_BATCH_ID))
        self._app_version_dir = Path(app_version) if app_version else (
            self._installed_version() if self.project_dir else None)
        self._host_usage = self._plan_class_usage()      # mt / nvidia_gpu: what tasks get
        self._runtime_zip = Path(runtime) if runtime else None
        self._code = [Path(c) for c in code]
        self._cache_dir = Path(cache_dir) if cache_dir else None
        self._requirements = Path(requirements) if requirements else None   # _local_app
        self._wheels = [Path(w) for w in wheels]
        self._app_files: Optional[tuple[str, list]] = None
        self._shipped_modules: set[str] = set()
        self._app_lock = threading.Lock()
        self._lock = threading.Lock()
        self._next_index = 0
        self._ids = itertools.count(1)
        self._slots: queue.Queue[int] = queue.Queue()
        for slot in range(self.workers):
            self._slots.put(slot)
        self._replicas = ThreadPoolExecutor(self.workers, thread_name_prefix="boinc-local-slot")
        self._workunits = ThreadPoolExecutor(self.workers, thread_name_prefix="boinc-local-wu")
        self._closed = False
        self._results_of: dict[str, list] = {}
        self._queued: set[WorkItem] = set()
        if generated:
            print(f"boinc_pymw: batch {self.batch} in {self.workdir} "
                  f"(reattach with --batch {self.batch})", file=sys.stderr)

    # -- command line ----------------------------------------------------------------------
    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        BoincBackend.add_arguments(parser)
        if any("--quorum" in a.option_strings for a in parser._actions):
            return
        group = parser.add_argument_group("local debug mode (-i boinc-local)")
        group.add_argument("--quorum", type=int, default=None,
                           help=f"replicas per workunit and min_quorum (default: the app's "
                                f"template, else {DEFAULT_QUORUM})")
        group.add_argument("--app-version", default=None,
                           help="an installed app version directory to run "
                                "(default: the project's newest, else built here)")
        group.add_argument("--workdir", default=None,
                           help="where slots, uploads and the results store go "
                                "(default: $TMPDIR/boinc_pymw_local/<batch>)")
        group.add_argument("--client", default=None, choices=("auto", "boinc", "builtin"),
                           help="run jobs under the real BOINC client (boinc), our own slot "
                                "runner (builtin), or the client when installed (auto, default)")
        group.add_argument("--requirements", default=None, metavar="FILE",
                           help="pip requirement lines: the wheels volunteers would get, packed "
                                "and cached as install-app --requirements does")
        group.add_argument("--validator", default=None,
                           help=f"validator class module:Class (default {DEFAULT_VALIDATOR})")
        group.add_argument("--assimilator", default=None,
                           help=f"assimilator class module:Class (default {DEFAULT_ASSIMILATOR})")

    @classmethod
    def options_from_args(cls, args: argparse.Namespace) -> dict:
        options = BoincBackend.options_from_args(args)
        for key in ("quorum", "app_version", "workdir", "validator", "assimilator", "client",
                    "requirements"):
            value = getattr(args, key, None)
            if value is not None:
                options[key] = value
        return options

    # -- set-up -------------------------------------------------------------------------------
    def _templates(self, quorum: Optional[int]) -> tuple[str, str]:
        if self.project_dir is not None:
            from ...templates import template_paths

            in_path, out_path = template_paths(str(self.project_dir), self.app_name)
            try:
                texts = (Path(in_path).read_text(), Path(out_path).read_text())
            except OSError as exc:
                raise BoincPymwError(f"app {self.app_name}: cannot read its templates "
                                     f"({exc}); run boinc_pymw install-app first") from None
            if quorum is None:
                return texts
            refs_text = texts[0]
            from ...templates import render_input_template

            refs, fields = parse_input_template(refs_text)
            fields.update(min_quorum=quorum, target_nresults=quorum)
            fields["max_success_results"] = max(fields.get("max_success_results", 0), quorum)
            fields["max_total_results"] = max(fields.get("max_total_results", 0),
                                              fields["max_success_results"])
            return render_input_template(refs, **fields), texts[1]
        return default_templates(quorum or DEFAULT_QUORUM)

    def _replication_numbers(self) -> dict:
        """create_work's defaults (backend_lib.h), the template's values, then
        create_work's rule: target_nresults raises max_success/max_total."""
        from ...boinc.create_work import WU_DEFAULTS

        names = ("min_quorum", "target_nresults", "max_error_results", "max_total_results",
                 "max_success_results")
        f = {k: int(WU_DEFAULTS[k]) for k in names}
        f.update({k: int(v) for k, v in self.wu_fields.items() if k in f})
        f["max_success_results"] = max(f["max_success_results"], f["target_nresults"])
        f["max_total_results"] = max(f["max_total_results"], f["target_nresults"])
        return f

    def _daemon(self, reference, extra_args: Sequence[str], store: Optional[str] = None):
        cls = load_class(reference)
        argv = ["--app", self.app_name, *extra_args]
        if store is not None and reference == DEFAULT_ASSIMILATOR and "--store" not in argv:
            argv += ["--store", store]
        options = cls.parse_args(argv)
        return cls(options, project=self.local_project)

    def _plan_class_usage(self):
        """What the scheduler would give this machine for the version's plan class
        (boinc/plan_class.py); an error if it would not send the version here."""
        from ...boinc.plan_class import HostUsage, local_host_usage, plan_class_of

        plan_class = plan_class_of(self._app_version_dir) if self._app_version_dir else ""
        if not plan_class:
            return plan_class, HostUsage()
        project_dir = self.project_dir or self._app_version_dir.resolve().parents[3]
        return plan_class, local_host_usage(str(project_dir), plan_class)

    def _installed_version(self) -> Optional[Path]:
        from ._local_app import latest_installed_version

        return latest_installed_version(self.project_dir, self.app_name)

    def _app_version_for(self, module: str) -> tuple[str, list]:
        """The app version files; built code includes ``module``'s top-level package."""
        from . import _local_app

        with self._app_lock:
            if self._app_version_dir is not None:
                if self._app_files is None:
                    self._app_files = _local_app.installed_app_version(self._app_version_dir)
                return self._app_files
            top = module.split(".")[0]
            if self._app_files is None or top not in self._shipped_modules:
                self._shipped_modules.add(top)
                roots = list(self._code) + _local_app.code_roots_of(sorted(self._shipped_modules))
                self._app_files = _local_app.built_app_version(
                    roots, self._cache_dir, self._runtime_zip, self._requirements, self._wheels)
            return self._app_files

    # -- work ----------------------------------------------------------------------------------
    def submit(self, items: Sequence[WorkItem]) -> None:
        if self._closed:
            raise RuntimeError("cannot submit to a BOINC back end after shutdown")
        with self._lock:
            for item in items:
                index = self._next_index
                self._next_index += 1
                name = workunit_name(self.batch, index)
                try:
                    job, data_files = self._encode(item)
                    data = encode_input(job)
                except Exception as exc:  # this call only: the rest of the submit goes on
                    item.set_exception(exc)
                    continue
                path = self.download_dir / input_file_name(name)
                listing = "".join(f"{f.open_name}\t{f.physical_name}\n"
                                  for f in data_files).encode()
                listed = path.with_suffix(".data_files")    # which data files it had
                if path.exists() and (path.read_bytes() != data or listing !=
                                      (listed.read_bytes() if listed.exists() else b"")):
                    raise changed_input_error(self.batch, name, path)
                if not path.exists():
                    if listing:
                        write_atomic(listed, listing)
                    write_atomic(path, data)
                module = job["function"].partition(":")[0]
                self._queued.add(item)
                self._workunits.submit(self._run_workunit, item, name, path, module,
                                       data_files)

    def _encode(self, item: WorkItem) -> tuple:
        """(job document, data files as copied slot inputs) of one call; a call of
        submit_task(data_files=...) runs its function with the files in its slot."""
        from ...local.slots import SlotFile
        from ...worker import encode_task
        from . import _data_files

        fn, args, kwargs, files = _data_files.split_call(item)
        if not files:
            return encode_call(item), []
        job = encode_task(fn, args, kwargs)
        reserved = {r["open_name"] for r in self.input_refs + self.output_refs
                    if r["open_name"]}
        inputs = _data_files.data_inputs(files, reserved)
        _data_files.check_disk_bound(inputs, self.wu_fields.get("rsc_disk_bound"))
        return job, [SlotFile(d.physical_name, Path(_data_files.copy_into(d, self.download_dir)),
                              d.open_name, copy_file=True) for d in inputs]

    def _run_workunit(self, item: WorkItem, name: str, input_path: Path, module: str,
                      data_files: Sequence = ()) -> None:
        with self._lock:
            self._queued.discard(item)
        if not item.mark_started():
            return
        try:
            record = self.store.record(name)
            if record is None:
                self._process(item, name, input_path, module, data_files)
                record = self.store.record(name)
            if record is None:
                raise BoincPymwError(
                    f"workunit {name} was assimilated but the results store "
                    f"{self.store.group_dir} has no record of it: the assimilator "
                    f"{type(self.assimilator).__name__} must write the boinc_pymw results store")
            ok, value = outcome_from_record(record)
            if not ok and getattr(value, "wu_name", None) == name:
                value = self._with_local_detail(value, name)
        except BaseException as exc:  # noqa: BLE001 - every failure must reach the future
            ok, value = False, exc
        (item.set_result if ok else item.set_exception)(value)

    # -- one workunit through the pipeline ---------------------------------------------------
    def _process(self, item: WorkItem, name: str, input_path: Path, module: str,
                 data_files: Sequence = ()) -> None:
        from ...local.slots import SlotFile
        from ...boinc.states import (AssimilateState, Outcome, ServerState, ValidateState,
                                    WuError)
        from ...boinc.validator import check_set

        main, app_files = self._app_version_for(module)
        rep = self._replication
        wu = {"id": next(self._ids), "name": name, "batch": LOCAL_BATCH_ID, "appid": 1,
              "error_mask": 0, "canonical_resultid": 0, "canonical_credit": 0.0,
              "assimilate_state": int(AssimilateState.READY), "need_validate": 0,
              "transition_time": int(time.time()), "opaque": 0.0, **rep}
        ref = self.input_refs[0]
        inputs = [SlotFile(input_path.name, input_path, ref["open_name"], ref["copy_file"]),
                  *data_files]
        results: list[dict] = []
        target = rep["target_nresults"]
        while True:
            viable = [r for r in results if r["outcome"] == Outcome.SUCCESS
                      and r["validate_state"] != ValidateState.INVALID]
            wanted = target - len(viable)
            errors = sum(1 for r in results if r["outcome"] in (Outcome.CLIENT_ERROR,
                                                                 Outcome.VALIDATE_ERROR))
            if errors > rep["max_error_results"]:
                wu["error_mask"] |= int(WuError.TOO_MANY_ERROR_RESULTS)
                break
            if wanted > 0 and len(results) + wanted > rep["max_total_results"]:
                wu["error_mask"] |= int(WuError.TOO_MANY_TOTAL_RESULTS)
                break
            if wanted > 0:
                futures = [self._replicas.submit(self._run_replica, wu, len(results) + i,
                                                 main, app_files, inputs, item.timeout)
                           for i in range(wanted)]
                results.extend(f.result() for f in futures)
                continue
            canonical_id, _retry = check_set(viable, wu["min_quorum"], self.validator._init,
                                             self.validator.compare, self.validator._cleanup)
            if canonical_id:
                wu["canonical_resultid"] = canonical_id
                for r in results:
                    if r["validate_state"] == ValidateState.INIT:
                        r["validate_state"] = int(ValidateState.INCONCLUSIVE)
                break
            still_viable = [r for r in viable if r["validate_state"] != ValidateState.INVALID]
            if len(still_viable) > rep["max_success_results"]:
                wu["error_mask"] |= int(WuError.TOO_MANY_SUCCESS_RESULTS)
                break
            target = len(still_viable) + 1   # no consensus: one more replica, as BOINC
        self._results_of[name] = results
        canonical = next((r for r in results if r["id"] == wu["canonical_resultid"]), None)
        if canonical is None and not wu["error_mask"]:
            wu["error_mask"] = int(WuError.NO_CANONICAL_RESULT)
        for r in results:
            r["server_state"] = int(ServerState.OVER)
        self.assimilator.assimilate(wu, results, canonical)

    def _run_replica(self, wu: dict, seq: int, main: str, app_files: list, inputs: list,
                     timeout: Optional[float]) -> dict:
        from ...local.slots import SlotFile, SlotJob, client_stderr_out
        from ...boinc.states import ClientState, Outcome, ServerState, ValidateState

        result_name = f"{wu['name']}_{seq}"
        rand = random.randrange(1 << 30)
        physical = [f"{result_name}_r{rand}_{n}" for n in range(len(self.output_refs))]
        outputs = [SlotFile(p, None, ref["open_name"], ref["copy_file"], ref["optional"],
                            ref["max_nbytes"]) for p, ref in zip(physical, self.output_refs)]
        job = SlotJob(app_name=self.app_name, wu_name=wu["name"], result_name=result_name,
                      main_program=main, app_files=app_files, input_files=inputs,
                      output_files=outputs, time_limit=timeout,
                      rsc_fpops_est=float(self.wu_fields.get("rsc_fpops_est", 3600e9)),
                      rsc_fpops_bound=float(self.wu_fields.get("rsc_fpops_bound", 86400e9)),
                      plan_class=self._host_usage[0], avg_ncpus=self._host_usage[1].avg_ncpus,
                      gpu_type=self._host_usage[1].gpu_type,
                      gpu_device_num=self._host_usage[1].gpu_device_num)
        slot = self._slots.get()
        try:
            outcome = self.runner.run(job, slot)
        finally:
            self._slots.put(slot)
        log.info("%s: %s", result_name, "success" if outcome.success else outcome.message)
        return {
            "id": next(self._ids), "name": result_name, "workunitid": wu["id"],
            "server_state": int(ServerState.OVER),
            "outcome": int(Outcome.SUCCESS if outcome.success else Outcome.CLIENT_ERROR),
            "client_state": int(ClientState.FILES_UPLOADED if outcome.success
                                else ClientState.COMPUTE_ERROR),
            "validate_state": int(ValidateState.INIT if outcome.success
                                  else ValidateState.INVALID),
            "exit_status": outcome.exit_status,
            "xml_doc_in": result_xml_doc_in(result_name, self.output_refs, physical),
            "xml_doc_out": "",
            "stderr_out": client_stderr_out(outcome),
            "message": outcome.message,
            "elapsed_time": outcome.elapsed, "cpu_time": outcome.elapsed,
            "batch": LOCAL_BATCH_ID, "appid": 1, "hostid": 1, "userid": 1, "teamid": 0,
            "opaque": 0.0, "claimed_credit": 0.0, "granted_credit": 0.0,
            "received_time": int(time.time()), "sent_time": int(time.time()),
            "app_version_id": 0, "app_version_num": 0, "flops_estimate": 0.0,
            "runtime_outlier": 0, "random": rand,
        }

    def _with_local_detail(self, error, name: str):
        """Add what each replica did (and a failed one's stderr) to a failure."""
        from ...boinc.states import Outcome
        from .outcomes import WorkunitFailed

        results = self._results_of.pop(name, None) or []
        if not results:
            return error
        parts, excerpt = [], ""
        for r in results:
            state = Outcome(r["outcome"]).name
            if r["outcome"] == Outcome.CLIENT_ERROR:
                state += f" ({r['message']})"
            elif r["outcome"] == Outcome.VALIDATE_ERROR:
                state += " (the validator refused its output)"
            parts.append(f"{r['name']}: {state}")
            if r["outcome"] != Outcome.SUCCESS and not excerpt:
                excerpt = stderr_excerpt(r["stderr_out"])
        return WorkunitFailed(name, error.error_mask, error.reason,
                              "results: " + ", ".join(parts), excerpt or error.stderr)

    # -- end ---------------------------------------------------------------------------------
    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        self._closed = True
        if cancel_futures:
            with self._lock:
                queued, self._queued = list(self._queued), set()
            for item in queued:
                item.future.cancel()   # its workunit thread then skips it
        self._workunits.shutdown(wait=wait)
        self._replicas.shutdown(wait=wait)

    def status(self) -> dict:
        return {"workers": self.workers, "batch": self.batch, "workdir": str(self.workdir),
                "client": "boinc" if type(self.runner).__name__ == "BoincClientRunner"
                else "builtin",
                "app": self.app_name, **{k: v for k, v in self._replication.items()}}
