"""Drop-in replacements for BOINC's ``script_validator`` and ``script_assimilator``.

Projects that already have validation or assimilation scripts keep them:
the same options and tokens as BOINC's C++ programs, scripts looked up in
the project's ``bin/`` (BOINC runs ``../bin/<script>`` from ``tmp_<host>``),
run with an argument list (never a shell).

script_validator::

    --init_script "name [files result_id runtime]"
    --compare_script "name [files files2 result_id result_id2 runtime runtime2]"

exit 0 = valid / match, 3 = transient (try later), anything else = invalid /
no match. Without ``--compare_script`` results are compared by their init
script's success only (every result that passed matches).

script_assimilator::

    --script "name [files files2 wu_id wu_name result_id runtime batch_id]"

(default tokens ``wu_id files``); a failed workunit is reported as
``name --error <error_mask> <wu_name> <wu_id> <batch>`` (server 1.6 form).
A non-zero exit is a handler error: the daemon exits and the workunit is
retried after the restart, as in BOINC.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys

from boinc_pymw.boinc.assimilator import Assimilator
from boinc_pymw.boinc.output_files import BadOutputFile, check_file_name
from boinc_pymw.boinc.validator import Invalid, TransientError, Validator

TRANSIENT_EXIT = 3
VALIDATOR_TOKENS = {"files", "files2", "result_id", "result_id2", "runtime", "runtime2"}
ASSIMILATOR_TOKENS = {"files", "files2", "wu_id", "wu_name", "result_id", "runtime", "batch_id"}


def parse_script_spec(spec: str, allowed: set, default: list) -> tuple[str, list]:
    words = shlex.split(spec or "")
    if not words:
        raise SystemExit("script: empty script specification")
    try:
        name = check_file_name(words[0])
    except BadOutputFile as exc:
        raise SystemExit(f"script: {exc} (a script in the project's bin/)") from exc
    tokens = words[1:] or list(default)
    bad = [t for t in tokens if t not in allowed]
    if bad:
        raise SystemExit(f"script: unknown token(s) {bad}; allowed: {sorted(allowed)}")
    return name, tokens


def _script_path(project, name: str) -> str:
    return os.path.join(project.path, "bin", name)


class _ScriptRunner:
    timeout = 3600

    def run_script(self, name: str, args: list) -> int:
        argv = [_script_path(self.project, name), *[str(a) for a in args]]
        proc = subprocess.run(argv, cwd=os.getcwd(), timeout=self.timeout,
                              stdin=subprocess.DEVNULL)
        return proc.returncode


class ScriptValidator(_ScriptRunner, Validator):
    """BOINC's script_validator: init/compare through external scripts."""

    @classmethod
    def add_arguments(cls, parser):
        super().add_arguments(parser)
        parser.add_option("init_script", default=None)
        parser.add_option("compare_script", default=None)

    def __init__(self, options, project=None, db=None):
        super().__init__(options, project, db)
        self.init_spec = (parse_script_spec(options.init_script, VALIDATOR_TOKENS,
                                            ["files"]) if options.init_script else None)
        self.compare_spec = (parse_script_spec(options.compare_script, VALIDATOR_TOKENS,
                                               ["files", "files2"])
                             if options.compare_script else None)
        if not (self.init_spec or self.compare_spec):
            raise SystemExit("script_validator: give --init_script and/or --compare_script")

    def init_result(self, result):
        paths = [f.path for f in self.output_files(result)]
        if self.init_spec:
            name, tokens = self.init_spec
            args = []
            for t in tokens:
                args += paths if t == "files" else [result["id"]] if t == "result_id" \
                    else [result["elapsed_time"]] if t == "runtime" else []
            code = self.run_script(name, args)
            if code == TRANSIENT_EXIT:
                raise TransientError(f"{name} exited {code}")
            if code != 0:
                raise Invalid(f"{name} exited {code}")
        return {"paths": paths, "id": result["id"], "runtime": result["elapsed_time"]}

    def compare(self, data1, data2):
        if not self.compare_spec:
            return True
        name, tokens = self.compare_spec
        values = {"files": data1["paths"], "files2": data2["paths"],
                  "result_id": [data1["id"]], "result_id2": [data2["id"]],
                  "runtime": [data1["runtime"]], "runtime2": [data2["runtime"]]}
        code = self.run_script(name, [a for t in tokens for a in values[t]])
        if code == TRANSIENT_EXIT:
            raise TransientError(f"{name} exited {code}")
        return code == 0


class ScriptAssimilator(_ScriptRunner, Assimilator):
    """BOINC's script_assimilator: hand each workunit to an external script."""

    @classmethod
    def add_arguments(cls, parser):
        super().add_arguments(parser)
        parser.add_option("script", required=True)

    def __init__(self, options, project=None, db=None):
        super().__init__(options, project, db)
        self.spec = parse_script_spec(options.script, ASSIMILATOR_TOKENS, ["wu_id", "files"])

    def assimilate(self, wu, results, canonical):
        name, tokens = self.spec
        if canonical is None:
            args = ["--error", wu["error_mask"], wu["name"], wu["id"], wu["batch"]]
        else:
            files = self.output_files(canonical)
            values = {"files": [f.path for f in files],
                      "files2": [x for f in files for x in (f.path, f.open_name)],
                      "wu_id": [wu["id"]], "wu_name": [wu["name"]],
                      "result_id": [canonical["id"]], "runtime": [canonical["elapsed_time"]],
                      "batch_id": [wu["batch"]]}
            args = [a for t in tokens for a in values[t]]
        code = self.run_script(name, args)
        if code != 0:
            raise RuntimeError(f"assimilator script {name} exited {code}")


def main_validator() -> int:
    return ScriptValidator.main()


def main_assimilator() -> int:
    return ScriptAssimilator.main()


if __name__ == "__main__":
    # python -m boinc_pymw.daemons.script_adapters validator|assimilator OPTIONS
    kind = sys.argv.pop(1) if len(sys.argv) > 1 else ""
    if kind not in ("validator", "assimilator"):
        sys.exit("usage: script_adapters.py validator|assimilator [options]")
    sys.exit(main_validator() if kind == "validator" else main_assimilator())
