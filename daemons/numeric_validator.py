"""Numeric validator: text or JSON outputs that agree within a tolerance.

Floating-point results differ in the last bits between CPUs, compilers and
libm versions, so bitwise comparison rejects honest volunteers. This
validator reads each output file as JSON when it parses as JSON, otherwise
as whitespace-separated tokens, and compares the two structures: numbers
with ``math.isclose(a, b, rel_tol, abs_tol)``, everything else exactly,
lists/dicts element by element (same length and keys).

Options: ``--rel_tol`` (default 1e-6), ``--abs_tol`` (default 1e-9).
Output that is not UTF-8, or has NaN where the other has a number, or a
different shape, does not match; undecodable output makes the result invalid.
"""

from __future__ import annotations

import json
import math
import sys

from boinc_pymw.boinc.validator import Invalid, Validator


def parse_numeric_output(data: bytes):
    """JSON if it parses, else a list of tokens (numbers as floats)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Invalid(f"output is not UTF-8 text: {exc}") from exc
    try:
        return json.loads(text, parse_constant=float)
    except (ValueError, RecursionError):
        pass
    tokens = []
    for token in text.split():
        try:
            tokens.append(float(token))
        except ValueError:
            tokens.append(token)
    return tokens


def close_enough(a, b, rel_tol: float, abs_tol: float) -> bool:
    """Structural comparison with a numeric tolerance."""
    numeric = (int, float)
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    if isinstance(a, numeric) and isinstance(b, numeric):
        a, b = float(a), float(b)
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return math.isclose(a, b, rel_tol=rel_tol, abs_tol=abs_tol)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close_enough(x, y, rel_tol, abs_tol) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close_enough(a[k], b[k], rel_tol, abs_tol) for k in a)
    return a == b


class NumericValidator(Validator):
    """Results match when their numbers agree within ``--rel_tol``/``--abs_tol``."""

    @classmethod
    def add_arguments(cls, parser):
        super().add_arguments(parser)
        parser.add_option("rel_tol", type=float, default=1e-6, help="relative tolerance")
        parser.add_option("abs_tol", type=float, default=1e-9, help="absolute tolerance")

    def init_result(self, result):
        return [None if data is None else parse_numeric_output(data)
                for data in self.read_outputs(result)]

    def compare(self, data1, data2):
        return close_enough(data1, data2, self.options.rel_tol, self.options.abs_tol)


if __name__ == "__main__":
    sys.exit(NumericValidator.main())
