"""Validators on big and awkward honest outputs (issue 13, cases 3 and 5): identical
outputs validate however deep or long their numbers, NaN is not equal to NaN unless
asked, memory stays within a small multiple of the output, and the output template's
<max_nbytes> is honoured."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from boinc_pymw.boinc.states import Outcome, ValidateState
from boinc_pymw.daemons.bitwise_validator import BitwiseValidator
from boinc_pymw.daemons.numeric_validator import (JSON, TEXT, NumericValidator, output_mode,
                                                  tokens)
from boinc_pymw.local.simulate import run_to_validation

from .conftest import run_daemon

V, I, INC = ValidateState.VALID, ValidateState.INVALID, ValidateState.INCONCLUSIVE


def states(db, wu_id):
    return [r["validate_state"] for r in db.query(
        "SELECT validate_state FROM result WHERE workunitid=%s ORDER BY id", (wu_id,))]


def pair(world, name, a, b, **fields):
    return run_to_validation(world.project, world.app_id, world.hosts[:2], [[a], [b]], name,
                             min_quorum=2, app_version_id=world.av_id, **fields)


def test_identical_deep_json_and_huge_integers_validate(world):
    deep = b"[" * 950 + b"1.5" + b"]" * 950
    huge = str(7 ** 4970).encode()[:4200]              # 4,200 digits
    assert len(huge) == 4200
    wus = {
        "deep": pair(world, "deep", deep, deep),
        "deep_close": pair(world, "deep_close", deep, deep.replace(b"1.5", b"1.5000000001")),
        "huge": pair(world, "huge", b'{"n": ' + huge + b"}", b'{"n": ' + huge + b"}"),
        "huge_text": pair(world, "huge_text", huge + b" 2.0\n", huge + b" 2.0000000001\n"),
        "huge_differs": pair(world, "huge_differs", huge, huge[:-1] + b"0"),
    }
    assert run_daemon(NumericValidator, world.project) == 0
    assert states(world.db, wus["deep"]) == [V, V]
    assert states(world.db, wus["deep_close"]) == [V, V]
    assert states(world.db, wus["huge"]) == [V, V]
    assert states(world.db, wus["huge_text"]) == [V, V]
    # beyond a double's range the integer is compared exactly
    assert states(world.db, wus["huge_differs"]) == [INC, INC]


@pytest.mark.parametrize("nan_equal", [False, True])
def test_nan_equals_nan_only_when_asked(world, nan_equal):
    text = pair(world, "text", b"1.0 nan 3\n", b"1.0 nan 3\n")
    js = pair(world, "json", b'{"x": [NaN, 2]}', b'{"x": [NaN, 2]}')
    mixed = pair(world, "mixed", b"1.0 nan\n", b"1.0 2.0\n")
    args = ["--nan_equal"] if nan_equal else []
    assert run_daemon(NumericValidator, world.project, *args) == 0
    expected = [V, V] if nan_equal else [INC, INC]
    assert states(world.db, text) == expected
    assert states(world.db, js) == expected
    assert states(world.db, mixed) == [INC, INC]


def test_shape_strings_and_keys_compare_exactly(world):
    wus = {
        "keys": pair(world, "keys", b'{"a": 1, "b": 2}', b'{"a": 1, "c": 2}'),
        "strings": pair(world, "strings", b'["x", 1.0]', b'["y", 1.0]'),
        "length": pair(world, "length", b"1 2 3", b"1 2"),
        "spacing": pair(world, "spacing", b'{"a":[1,2]}', b'{ "a" : [ 1.0 , 2.0 ] }\n'),
        "words": pair(world, "words", b"energy 1.0 J\n", b"energy   1.0000000001 J"),
    }
    assert run_daemon(NumericValidator, world.project) == 0
    assert states(world.db, wus["keys"]) == [INC, INC]
    assert states(world.db, wus["strings"]) == [INC, INC]
    assert states(world.db, wus["length"]) == [INC, INC]
    assert states(world.db, wus["spacing"]) == [V, V]
    assert states(world.db, wus["words"]) == [V, V]


@pytest.mark.parametrize("data, mode", [
    (b'{"a": [1, 2, {"b": null}]}', JSON), (b"  [1]  \n", JSON), (b'"s"', JSON),
    (b"1 2", TEXT), (b"[1,]", TEXT), (b'{"a" 1}', TEXT), (b"[1]]", TEXT), (b"[" * 5, TEXT),
    (b'{"a": 1,}', TEXT), (b"truex", TEXT), (b"01", TEXT), (b"", TEXT),
])
def test_json_is_recognised_as_a_whole_document(data, mode):
    assert output_mode(data) == mode


def test_text_numbers_are_what_float_takes():
    got = [(n, v) for n, v in tokens(b"1 -2.5e3 inf +nan 1_000 1e abc .5 5.", TEXT)]
    numbers = [v for n, v in got if n]
    assert numbers[:3] == [1.0, -2500.0, float("inf")]
    assert numbers[3] != numbers[3] and numbers[4:] == [0.5, 5.0]
    assert [v for n, v in got if not n] == [b"1_000", b"1e", b"abc"]


def test_validators_honour_max_nbytes(world):
    db = world.db
    wu_id = pair(world, "big", b"x" * 200, b"x" * 200)
    for r in db.query("SELECT id, xml_doc_in FROM result WHERE workunitid=%s", (wu_id,)):
        db.execute("UPDATE result SET xml_doc_in=%s WHERE id=%s",
                   (r["xml_doc_in"].replace(b"<max_nbytes>5000000", b"<max_nbytes>100"),
                    r["id"]))
    assert run_daemon(BitwiseValidator, world.project) == 0
    assert states(db, wu_id) == [I, I]
    assert {r["outcome"] for r in db.query("SELECT outcome FROM result WHERE workunitid=%s",
                                           (wu_id,))} == {Outcome.VALIDATE_ERROR}


MEMORY_PROBE = textwrap.dedent("""
    import resource, sys
    from boinc_pymw.boinc.output_files import OutputFile
    from boinc_pymw.daemons.numeric_validator import fingerprint, numbers_close
    kind = sys.argv[1]
    n = 1 << 19
    if kind == "json":
        data = b"[" + b",".join([b"[1.5, 2, {\\"k\\": 3}]"] * (n // 8)) + b"]"
    else:
        data = b"1 " * n
    other = data[:-4] + b"4}]]" if kind == "json" else data[:-2] + b"7 "
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    f = OutputFile("x", "out", "/nonexistent")
    a, b = fingerprint(f, data), fingerprint(f, other)
    assert a.skeleton == b.skeleton and a.numbers != b.numbers, kind
    assert not numbers_close(data, a.mode, other, b.mode, 1e-6, 1e-9)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(len(data), (peak - base) * 1024)
""")


@pytest.mark.parametrize("kind", ["text", "json"])
def test_numeric_validator_memory_stays_near_the_output_size(kind):
    """1-2.5 MB of tiny numbers: the old parser kept a Python object per number (16-22x)."""
    out = subprocess.run([sys.executable, "-c", MEMORY_PROBE, kind], check=True,
                         capture_output=True, text=True, cwd=os.path.dirname(__file__)).stdout
    size, growth = map(int, out.split())
    assert growth < size + (4 << 20), (size, growth)
