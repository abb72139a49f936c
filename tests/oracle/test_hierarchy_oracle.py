"""dir_hier_path / dir_hier_url agree with libsched's for thousands of names."""

import random
import string

import pytest

from boinc_pymw.boinc import dir_hier_path, dir_hier_url
from oracle import run_oracle


def _names(n=3000, seed=7):
    rng = random.Random(seed)
    alphabet = string.ascii_letters + string.digits + "_-.+~"
    names = [f"wu_{i}_r{rng.randrange(10**9)}_0" for i in range(n // 2)]
    names += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 60)))
              for _ in range(n - n // 2)]
    names += ["a", "in.dat", "x" * 250, "jf_" + "0" * 32]
    return names


@pytest.mark.parametrize("fanout", [0, 7, 1000, 1024])
def test_matches_libsched(oracle_exe, fanout):
    names = _names()
    root, base = "/srv/project/download", "http://example.org/p/download"
    out = run_oracle(oracle_exe, "hier", fanout, root, base, input="\n".join(names) + "\n")
    lines = out.splitlines()
    assert len(lines) == len(names)
    mismatches = [(name, line) for name, line in zip(names, lines)
                  if line != f"{dir_hier_path(name, root, fanout)}\t"
                             f"{dir_hier_url(name, base, fanout)}"]
    assert mismatches == []
    if fanout:
        dirs = {line.split("\t")[0].rsplit("/", 2)[1] for line in lines}
        assert len(dirs) > min(fanout, 500) * 0.9   # really spread over the fan-out
