"""Fixtures for the install-app tests: BOINC's own crypto code as an oracle."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


class BoincCryptOracle:
    """``boinc_crypt_oracle.cpp`` compiled against Debian's libboinc_crypt/libboinc."""

    def __init__(self, executable: Path):
        self.executable = executable

    def run(self, *args) -> str:
        done = subprocess.run([str(self.executable), *map(str, args)],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise AssertionError(f"oracle {args[0]} failed ({done.returncode}): {done.stderr}")
        return done.stdout

    def sign(self, path, private_key) -> str:
        return self.run("sign", path, private_key)

    def accepts(self, path, signature_file, public_key, *, v2: bool = True) -> bool:
        answer = self.run("check2" if v2 else "check", path, signature_file, public_key).strip()
        assert answer in ("valid", "invalid"), answer
        return answer == "valid"

    def reprint_key(self, kind: str, key_file) -> str:
        return self.run(f"print-{kind}", key_file)

    def genkey(self, private_path, public_path) -> None:
        self.run("genkey", private_path, public_path)

    def parse_xml_doc(self, xml_file, public_key, download_dir) -> list[str]:
        return self.run("xmldoc", xml_file, public_key, download_dir).splitlines()


@pytest.fixture(scope="session")
def boinc_crypt(tmp_path_factory) -> BoincCryptOracle:
    out = tmp_path_factory.mktemp("oracle") / "boinc_crypt_oracle"
    subprocess.run(
        ["g++", "-O1", "-Wno-deprecated-declarations", "-I/usr/include/boinc",
         str(HERE / "boinc_crypt_oracle.cpp"), "-o", str(out),
         "-lboinc_crypt", "-lboinc", "-lcrypto"],
        check=True)
    return BoincCryptOracle(out)
