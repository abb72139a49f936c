"""Fixtures for the install-app tests: BOINC's own crypto code as an oracle."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from install_helpers import make_runtime

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
def boinc_crypt() -> BoincCryptOracle:
    from oracle.build import build_oracle   # tests/oracle: compiles once per session

    return BoincCryptOracle(build_oracle(
        "boinc_crypt_oracle", HERE / "boinc_crypt_oracle.cpp",
        libs=["-lboinc_crypt", "-lboinc", "-lcrypto"]))


@pytest.fixture(scope="session")
def launchers(tmp_path_factory) -> dict:
    """The real C++ launcher, built once per session for both platforms."""
    from boinc_pymw.interpreter_build.launcher_build import build_launcher

    out = tmp_path_factory.mktemp("launchers")
    return {platform: build_launcher(platform, out / platform)
            for platform in ("x86_64-pc-linux-gnu", "windows_x86_64")}


@pytest.fixture
def runtime(tmp_path) -> Path:
    return make_runtime(tmp_path / "runtime")


@pytest.fixture
def task_code(tmp_path) -> Path:
    package = tmp_path / "code" / "squares"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("def square(x):\n    return x * x\n")
    (package / "helpers.py").write_text("ANSWER = 42\n")
    (package / "__pycache__").mkdir()
    (package / "__pycache__" / "junk.pyc").write_bytes(b"\0")
    return package


@pytest.fixture
def signed_project(boinc_project):
    """A throw-away project with its keys generated."""
    from boinc_pymw.boinc.signing import generate_keys

    generate_keys(boinc_project.key_dir)
    return boinc_project


@pytest.fixture(scope="session")
def portable_runtime(tmp_path_factory) -> Path:
    """The real x86_64 Linux runtime (build-interpreter's output directory)."""
    from boinc_pymw.interpreter_build.linux import build_linux_runtime

    return build_linux_runtime(tmp_path_factory.mktemp("portable") / "linux").directory


@pytest.fixture(scope="session")
def boinc_db_rows():
    """``rows(project_dir)``: app/platform/app_version rows as libsched's DB classes read them."""
    from oracle.build import build_oracle, run_oracle, xml_block

    exe = build_oracle("boinc_app_version_oracle", HERE / "boinc_app_version_oracle.cpp")

    def rows(project_dir) -> list:
        found, lines = [], iter(run_oracle(exe, "rows", project_dir).splitlines())
        for line in lines:
            if line == "<<<XML":
                found[-1]["xml_doc"] = "".join(inner + "\n" for inner in xml_block(lines))
                continue
            table, *fields = line.split("\t")
            found.append({"table": table, **dict(f.split("=", 1) for f in fields)})
        return found

    return rows
