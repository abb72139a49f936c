"""Numeric validator: text or JSON outputs that agree within a tolerance.

Floating-point results differ in the last bits between CPUs, compilers and
libm versions, so bitwise comparison rejects honest volunteers. This
validator reads each output file as JSON when it is a JSON document,
otherwise as whitespace-separated tokens, and two outputs match when they
have the same tokens in the same order, numbers agreeing within
``math.isclose(a, b, rel_tol, abs_tol)`` and everything else (strings, keys,
punctuation, words) byte for byte. JSON objects are compared in the order
their keys were written (replicas of one program write them alike).

Memory does not grow with what an output holds. ``init_result`` scans the
bytes once (no JSON objects are built, so nesting depth does not matter)
and keeps a fingerprint per file: a digest of its non-numeric tokens, a
digest of its numbers and their count. Outputs whose digests agree match
at once; when only the numbers differ in their bits, ``compare`` reads both
files again and walks their numbers side by side. So a validator process
holds at most two outputs at a time, about twice the largest accepted
output (``max_output_bytes`` or the template's ``<max_nbytes>``).

Numbers: JSON numbers, ``NaN`` and ``Infinity``, and in text any token
Python's ``float`` would take (``1``, ``-2.5e3``, ``inf``, ``nan``) except
with underscores. An integer beyond the range of a double (say 4,200
digits) is compared exactly, as text. NaN matches nothing, not even NaN,
unless ``--nan_equal`` is given.

Options: ``--rel_tol`` (default 1e-6), ``--abs_tol`` (default 1e-9),
``--nan_equal``. Output that is not UTF-8 makes the result invalid.
"""

from __future__ import annotations

import codecs
import hashlib
import math
import re
import sys
from array import array
from dataclasses import dataclass
from typing import Iterator, Optional, Union

from boinc_pymw.boinc.output_files import OutputFile
from boinc_pymw.boinc.validator import Invalid, Validator

_JSON_TOKEN = re.compile(
    rb'[ \t\n\r]*(?:'
    rb'("(?:[^"\\\x00-\x1f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*")'                    # 1 string
    rb'|(-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?|NaN|-?Infinity)'        # 2 number
    rb'|(true|false|null)'                                                            # 3 literal
    rb'|([\[\]{}:,]))')                                                               # 4 punct
_JSON_END = re.compile(rb'[ \t\n\r]*\Z')
_TEXT_TOKEN = re.compile(rb'\S+')
_TEXT_NUMBER = re.compile(
    rb'[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?'
    rb'|[iI][nN][fF](?:[iI][nN][iI][tT][yY])?|[nN][aA][nN])')

JSON, TEXT = b"J", b"T"
#: tokens per digest update (bounds the list of pieces kept between updates)
_BATCH = 65536

# states of the JSON grammar check
_VALUE, _VALUE_OR_CLOSE, _KEY, _KEY_OR_CLOSE, _COLON, _AFTER, _END = range(7)


class _NotJson(Exception):
    pass


def _json_tokens(data: bytes) -> Iterator[tuple[bool, bytes]]:
    """(is_number, token) of a JSON document; raises _NotJson where it stops being one.

    An explicit stack (one byte a level) instead of recursion: any depth is fine.
    """
    stack = bytearray()
    expect = _VALUE
    pos = 0
    for m in _JSON_TOKEN.finditer(data):
        if m.start() != pos:            # finditer skipped something that is not JSON
            raise _NotJson
        pos = m.end()
        string, number, literal, punct = m.groups()
        if punct is None:
            if string is not None and expect in (_KEY, _KEY_OR_CLOSE):
                expect = _COLON
            elif expect in (_VALUE, _VALUE_OR_CLOSE):
                expect = _AFTER if stack else _END
            else:
                raise _NotJson
            yield (number is not None, number or string or literal)
            continue
        c = punct[0]
        if c in b"[{":
            if expect not in (_VALUE, _VALUE_OR_CLOSE):
                raise _NotJson
            stack.append(c)
            expect = _VALUE_OR_CLOSE if c == 0x5B else _KEY_OR_CLOSE
        elif c in b"]}":
            opener = 0x5B if c == 0x5D else 0x7B
            if not stack or stack[-1] != opener or expect not in (
                    _AFTER, _VALUE_OR_CLOSE if c == 0x5D else _KEY_OR_CLOSE):
                raise _NotJson
            stack.pop()
            expect = _AFTER if stack else _END
        elif c == 0x3A:     # ':'
            if expect != _COLON:
                raise _NotJson
            expect = _VALUE
        else:               # ','
            if expect != _AFTER:
                raise _NotJson
            expect = _VALUE if stack[-1] == 0x5B else _KEY
        yield (False, punct)
    if expect != _END or not _JSON_END.match(data, pos):
        raise _NotJson


def _text_tokens(data: bytes) -> Iterator[tuple[bool, bytes]]:
    fullmatch = _TEXT_NUMBER.fullmatch
    for m in _TEXT_TOKEN.finditer(data):
        token = m.group()
        yield (fullmatch(token) is not None, token)


def output_mode(data: bytes) -> bytes:
    """JSON if the whole output is one JSON document, else TEXT."""
    try:
        for _ in _json_tokens(data):
            pass
    except _NotJson:
        return TEXT
    return JSON


def tokens(data: bytes, mode: bytes) -> Iterator[tuple[bool, Union[float, bytes]]]:
    """(True, value) for each number, (False, token) for everything else.

    A number too big for a double (not an explicit infinity) stays a token,
    so it is compared exactly.
    """
    for is_number, token in (_json_tokens(data) if mode == JSON else _text_tokens(data)):
        if is_number:
            value = float(token)
            if not math.isinf(value) or token[-1:] in (b"y", b"Y", b"f", b"F"):
                yield True, value
                continue
        yield False, token


def check_utf8(data: bytes, piece: int = 1 << 20) -> None:
    """Raise Invalid unless ``data`` is UTF-8 (decoded a piece at a time, nothing kept)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(data)
    try:
        for start in range(0, len(data), piece):
            decoder.decode(view[start:start + piece])
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        raise Invalid(f"output is not UTF-8 text: {exc}") from None


@dataclass(frozen=True)
class Fingerprint:
    """What init_result keeps of one output file (a few dozen bytes)."""

    file: OutputFile
    mode: bytes
    skeleton: bytes     # digest of the non-numeric tokens, numbers as empty slots
    numbers: bytes      # digest of the numbers as doubles
    count: int          # how many numbers
    has_nan: bool


def fingerprint(file: OutputFile, data: bytes) -> Fingerprint:
    """One pass over the output (two if it starts like JSON but is not)."""
    check_utf8(data)
    try:
        return _fingerprint(file, data, JSON)
    except _NotJson:
        return _fingerprint(file, data, TEXT)


def _fingerprint(file: OutputFile, data: bytes, mode: bytes) -> Fingerprint:
    skeleton, numbers = hashlib.blake2b(mode, digest_size=20), hashlib.blake2b(digest_size=20)
    pieces: list = []
    packed = array("d")
    count, has_nan, first = 0, False, True
    for is_number, value in tokens(data, mode):
        if is_number:
            pieces.append(b"")
            packed.append(value)
            count += 1
            if value != value:
                has_nan = True
            if len(packed) >= _BATCH:
                numbers.update(packed)
                del packed[:]
        else:
            pieces.append(value)
        if len(pieces) >= _BATCH:
            skeleton.update((b"" if first else b" ") + b" ".join(pieces))
            pieces.clear()
            first = False
    if pieces:
        skeleton.update((b"" if first else b" ") + b" ".join(pieces))
    numbers.update(packed)
    return Fingerprint(file, mode, skeleton.digest(), numbers.digest(), count, has_nan)


def numbers_close(data1: bytes, mode1: bytes, data2: bytes, mode2: bytes, rel_tol: float,
                  abs_tol: float, nan_equal: bool = False) -> bool:
    """Walk two outputs' numbers side by side (same count already known)."""
    numbers1 = (v for is_number, v in tokens(data1, mode1) if is_number)
    numbers2 = (v for is_number, v in tokens(data2, mode2) if is_number)
    isclose = math.isclose
    for a, b in zip(numbers1, numbers2):
        if a == b:
            continue
        if a != a or b != b:                  # NaN on either side
            if nan_equal and a != a and b != b:
                continue
            return False
        if not isclose(a, b, rel_tol=rel_tol, abs_tol=abs_tol):
            return False
    return True


class NumericValidator(Validator):
    """Results match when their numbers agree within ``--rel_tol``/``--abs_tol``."""

    @classmethod
    def add_arguments(cls, parser):
        super().add_arguments(parser)
        parser.add_option("rel_tol", type=float, default=1e-6, help="relative tolerance")
        parser.add_option("abs_tol", type=float, default=1e-9, help="absolute tolerance")
        parser.add_option("nan_equal", action="store_true",
                          help="a NaN matches a NaN (by default NaN matches nothing)")

    def init_result(self, result) -> list[Optional[Fingerprint]]:
        prints = []
        for f in self.output_files(result):
            if f.no_validate:
                continue
            data = self.read_output(f)
            prints.append(None if data is None else fingerprint(f, data))
        return prints

    def compare(self, data1, data2) -> bool:
        if len(data1) != len(data2):
            return False
        return all(self._files_match(a, b) for a, b in zip(data1, data2))

    def _files_match(self, a: Optional[Fingerprint], b: Optional[Fingerprint]) -> bool:
        if a is None or b is None:
            return a is b
        if (a.mode, a.skeleton, a.count) != (b.mode, b.skeleton, b.count):
            return False
        nan_equal = bool(getattr(self.options, "nan_equal", False))
        if a.numbers == b.numbers and (nan_equal or not (a.has_nan or b.has_nan)):
            return True
        # same shape, numbers differ in their bits (or NaN): compare them one by one
        data1, data2 = self.read_output(a.file), self.read_output(b.file)
        if data1 is None or data2 is None:
            return False
        return numbers_close(data1, a.mode, data2, b.mode, self.options.rel_tol,
                             self.options.abs_tol, nan_equal)


if __name__ == "__main__":
    sys.exit(NumericValidator.main())
