"""Code signing speed: our pure-Python sign_file vs BOINC's sign_file (libboinc_crypt).

Both sides sign the same files with the same 1024-bit key in the same run and
in the same process: BOINC's ``sign_file`` (MD5 + OpenSSL RSA, what
``sign_executable`` runs) is called through ctypes on Debian's
libboinc_crypt.so.7. Two workloads: many small files (the RSA operation
dominates) and one large file the size of a runtime archive (MD5 dominates).
Every signature is checked to be identical on both sides. Prints seconds per
file for each and the ratio ours / BOINC (lower is better for us).

    .venv/bin/python benchmarks/bench_signing.py [--small 300] [--large-mb 64]
"""

from __future__ import annotations

import argparse
import ctypes
import os
import tempfile
import time
from pathlib import Path

from boinc_pymw.boinc import signing

_PRIVATE_KEY_SIZE = 706   # sizeof(R_RSA_PRIVATE_KEY) with MAX_RSA_MODULUS_BITS 1024
_SIGNATURE_SIZE = 129     # SIGNATURE_SIZE_BINARY


class _DataBlock(ctypes.Structure):
    _fields_ = [("data", ctypes.POINTER(ctypes.c_ubyte)), ("len", ctypes.c_uint)]


class BoincSigner:
    """libboinc_crypt's sscan_key_hex / sign_file / sprint_hex_data (C++ names)."""

    def __init__(self, private_key_path: Path):
        ctypes.CDLL("libboinc.so.7", mode=ctypes.RTLD_GLOBAL)
        crypt = ctypes.CDLL("libboinc_crypt.so.7")
        self._sign = crypt._Z9sign_filePKcR17R_RSA_PRIVATE_KEYR10DATA_BLOCK
        self._print = crypt._Z15sprint_hex_dataPcR10DATA_BLOCK
        self._key = ctypes.create_string_buffer(_PRIVATE_KEY_SIZE)
        text = private_key_path.read_bytes()
        if crypt._Z13sscan_key_hexPKcP3KEYi(text, self._key, _PRIVATE_KEY_SIZE):
            raise RuntimeError("libboinc_crypt could not read the key")

    def sign_file(self, path: Path) -> str:
        buffer = (ctypes.c_ubyte * _SIGNATURE_SIZE)()
        block = _DataBlock(buffer, _SIGNATURE_SIZE)
        if self._sign(os.fsencode(path), self._key, ctypes.byref(block)):
            raise RuntimeError(f"sign_file({path}) failed")
        text = ctypes.create_string_buffer(2 * _SIGNATURE_SIZE + 64)
        self._print(text, ctypes.byref(block))
        return text.value.decode()


def timed(label, sign, files, expected):
    start = time.perf_counter()
    for path in files:
        got = sign(path)
        if got != expected[path]:
            raise SystemExit(f"{label}: signature of {path} differs")
    return (time.perf_counter() - start) / len(files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=300, help="number of 1 KB files")
    parser.add_argument("--large-mb", type=int, default=64, help="size of the large file")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        signing.generate_keys(tmp / "keys")
        key = tmp / "keys" / "code_sign_private"
        small = []
        for i in range(args.small):
            small.append(tmp / f"small_{i}")
            small[-1].write_bytes(os.urandom(1024))
        large = tmp / "large"
        with open(large, "wb") as f:
            for _ in range(args.large_mb):
                f.write(os.urandom(1 << 20))

        boinc = BoincSigner(key)
        expected = {p: boinc.sign_file(p) for p in small + [large]}

        def ours(path):
            return signing.sign_file(path, key)

        print(f"{'workload':28} {'ours s/file':>12} {'BOINC s/file':>13} {'ours/BOINC':>10}")
        for label, files in ((f"{args.small} x 1 KB files", small),
                             (f"1 x {args.large_mb} MB file", [large])):
            theirs_t = timed("BOINC", boinc.sign_file, files, expected)
            ours_t = timed("ours", ours, files, expected)
            print(f"{label:28} {ours_t:12.6f} {theirs_t:13.6f} {ours_t / theirs_t:10.2f}")


if __name__ == "__main__":
    main()
