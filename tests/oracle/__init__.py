"""BOINC's own server code as the judge: C++ programs compiled at test time
against Debian's libsched/libboinc. Reuse ``build_oracle`` for your own checks::

    from oracle import build_oracle, run_oracle
    exe = build_oracle("my_check", SOURCE_TEXT_OR_PATH)
    out = run_oracle(exe, "arg1", "arg2")
"""

from .build import OracleBuildError, boinc_oracle, build_oracle, parse_fields, run_oracle

__all__ = ["OracleBuildError", "boinc_oracle", "build_oracle", "parse_fields", "run_oracle"]
