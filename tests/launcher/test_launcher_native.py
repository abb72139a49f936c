"""The native (Linux) launcher in BOINC-style slots: soft links, unpacking, exec, errors."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import zipfile

import pytest
from launcher_test_support import decode_echo, run_launcher

from boinc_pymw.interpreter_build.launcher_build import (
    RUNTIME_ARCHIVE_NAME,
    RUNTIME_CONFIG_NAME,
    LauncherBuildError,
    build_launcher,
)

LAUNCH_FAILED = 2
TRICKY_ARGS = ["plain", "with space", 'quote"inside', "trailing\\", "back\\\\slashes\\\"q",
               "", "tab\there", "ünïcødé 𝄞", "--looks-like-an-option", "*", "$HOME", "a;b|c"]


def _install(slot, launcher, archive):
    exe = slot.add_main_program(launcher, "boinc_pymw_launcher_1.0_x86_64-pc-linux-gnu")
    slot.add(RUNTIME_ARCHIVE_NAME, "boinc_pymw_runtime_1.0_x86_64-pc-linux-gnu.zip", archive)
    return exe


def test_passes_arguments_verbatim_and_runs_in_the_slot(boinc_slot, native_launcher, echo_program,
                                                        make_runtime_archive):
    archive = make_runtime_archive(echo_program, "bin/echo_argv", ["-m", "boinc_pymw.worker"])
    exe = _install(boinc_slot, native_launcher, archive)

    done = run_launcher(exe, boinc_slot, TRICKY_ARGS)

    assert done.returncode == 0, done.stderr.decode()
    cwd, args = decode_echo(done.stdout)
    assert cwd == str(boinc_slot.slot_dir)
    assert args == ["-m", "boinc_pymw.worker", *TRICKY_ARGS]
    # Unpacked once, in the project directory next to the archive, not in the slot.
    unpacked = [p.name for p in boinc_slot.project_dir.iterdir() if ".unpacked-" in p.name]
    assert len(unpacked) == 1
    assert not any(".unpack" in p.name for p in boinc_slot.slot_dir.iterdir())


def test_exit_status_of_the_interpreter_is_the_launchers(boinc_slot, native_launcher, echo_program,
                                                         make_runtime_archive):
    exe = _install(boinc_slot, native_launcher, make_runtime_archive(echo_program, "echo", []))
    for status in (0, 3, 77):
        done = run_launcher(exe, boinc_slot, env={**os.environ, "ECHO_EXIT_STATUS": str(status)})
        assert done.returncode == status


def test_launcher_runtime_option_picks_another_archive(boinc_slot, native_launcher, echo_program,
                                                       make_runtime_archive):
    exe = _install(boinc_slot, native_launcher, make_runtime_archive(echo_program, "echo", ["first"]))
    boinc_slot.add("other_runtime.zip", "other.zip", make_runtime_archive(echo_program, "echo", ["second"]))

    done = run_launcher(exe, boinc_slot, ["x", "--launcher-runtime=other_runtime.zip", "y"])

    assert done.returncode == 0, done.stderr.decode()
    assert decode_echo(done.stdout)[1] == ["second", "x", "y"]


def test_a_real_file_instead_of_a_soft_link_is_used_as_is(boinc_slot, native_launcher, echo_program,
                                                          make_runtime_archive):
    exe = boinc_slot.add_main_program(native_launcher, "launcher")
    shutil.copy2(make_runtime_archive(echo_program, "echo", ["copied"]), boinc_slot.slot_dir / RUNTIME_ARCHIVE_NAME)

    done = run_launcher(exe, boinc_slot)

    assert done.returncode == 0, done.stderr.decode()
    assert decode_echo(done.stdout)[1] == ["copied"]


def test_new_archive_content_gets_a_new_runtime_directory(boinc_slot, native_launcher, echo_program,
                                                          make_runtime_archive):
    exe = _install(boinc_slot, native_launcher, make_runtime_archive(echo_program, "echo", ["v1"]))
    assert decode_echo(run_launcher(exe, boinc_slot).stdout)[1] == ["v1"]
    boinc_slot.add(RUNTIME_ARCHIVE_NAME, "boinc_pymw_runtime_1.0_x86_64-pc-linux-gnu.zip",
                   make_runtime_archive(echo_program, "echo", ["v2"]))

    assert decode_echo(run_launcher(exe, boinc_slot).stdout)[1] == ["v2"]
    assert len([p for p in boinc_slot.project_dir.iterdir() if ".unpacked-" in p.name]) == 2


def test_damaged_runtime_is_unpacked_again(boinc_slot, native_launcher, echo_program, make_runtime_archive):
    exe = _install(boinc_slot, native_launcher, make_runtime_archive(echo_program, "bin/echo", ["again"]))
    assert run_launcher(exe, boinc_slot).returncode == 0
    (runtime,) = [p for p in boinc_slot.project_dir.iterdir() if ".unpacked-" in p.name]
    (runtime / "bin" / "echo").unlink()  # as a virus scanner might

    done = run_launcher(exe, boinc_slot)

    assert done.returncode == 0, done.stderr.decode()
    assert decode_echo(done.stdout)[1] == ["again"]
    assert sorted(p.name for p in boinc_slot.project_dir.iterdir() if ".unpack" in p.name or ".damaged" in p.name) \
        == [runtime.name]


def test_concurrent_first_starts_share_one_unpacked_runtime(boinc_slot, native_launcher, echo_program,
                                                            make_runtime_archive):
    blob = os.urandom(3 << 20)  # make unpacking slow enough for the starts to overlap
    archive = make_runtime_archive(echo_program, "echo", ["ok"], extra={"data/blob": blob})
    exe = _install(boinc_slot, native_launcher, archive)
    relative = os.path.relpath(exe, boinc_slot.slot_dir)

    procs = [subprocess.Popen([relative], cwd=boinc_slot.slot_dir, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) for _ in range(6)]
    results = [(p.wait(timeout=120), p.stdout.read(), p.stderr.read()) for p in procs]

    for status, out, err in results:
        assert status == 0, err.decode()
        assert decode_echo(out)[1] == ["ok"]
    entries = sorted(p.name for p in boinc_slot.project_dir.iterdir())
    unpacked = [n for n in entries if ".unpacked-" in n]
    assert len(unpacked) == 1 and not [n for n in entries if ".unpacking-" in n]
    assert (boinc_slot.project_dir / unpacked[0] / "data" / "blob").read_bytes() == blob


@pytest.mark.parametrize("level", [0, 1, 6, 9])
def test_inflate_matches_zlib(boinc_slot, native_launcher, echo_program, tmp_path, level):
    """Archives deflated by zlib at several levels unpack to the exact original bytes."""
    rng_bytes = os.urandom(200_000)
    contents = {
        "random.bin": rng_bytes,
        "text.txt": ("the quick brown fox jumps over the lazy dog\n" * 20_000).encode(),
        "mixed.bin": b"".join(rng_bytes[i:i + 97] + b"\0" * (i % 300) for i in range(0, 50_000, 97)),
        "empty": b"",
        "one": b"x",
        "sub dir/ü.txt": "non-ASCII name ü 𝄞".encode(),
    }
    archive = tmp_path / "deflated.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("echo")
        info.create_system, info.external_attr = 3, 0o100755 << 16
        zf.writestr(info, echo_program.read_bytes(), compress_type=zipfile.ZIP_DEFLATED, compresslevel=level)
        zf.writestr(RUNTIME_CONFIG_NAME, "interpreter = echo\n")
        for name, data in contents.items():
            zf.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=level)
    exe = _install(boinc_slot, native_launcher, archive)

    done = run_launcher(exe, boinc_slot)

    assert done.returncode == 0, done.stderr.decode()
    (runtime,) = [p for p in boinc_slot.project_dir.iterdir() if ".unpacked-" in p.name]
    for name, data in contents.items():
        assert (runtime / name).read_bytes() == data, name


def _expect_failure(done, *fragments):
    message = done.stderr.decode()
    assert done.returncode == LAUNCH_FAILED, message
    assert message.startswith("boinc_pymw_launcher: error:"), message
    for fragment in fragments:
        assert fragment in message


def test_missing_runtime_file_is_a_clear_error(boinc_slot, native_launcher):
    exe = boinc_slot.add_main_program(native_launcher, "launcher")
    _expect_failure(run_launcher(exe, boinc_slot), RUNTIME_ARCHIVE_NAME, "missing")


def test_soft_link_to_a_missing_file_is_a_clear_error(boinc_slot, native_launcher):
    exe = boinc_slot.add_main_program(native_launcher, "launcher")
    boinc_slot.link(RUNTIME_ARCHIVE_NAME, "not_downloaded.zip")
    _expect_failure(run_launcher(exe, boinc_slot), "not_downloaded.zip", "does not exist")


def test_corrupt_archive_is_a_clear_error(boinc_slot, native_launcher):
    exe = _install(boinc_slot, native_launcher, _bytes_file(boinc_slot, b"PK\3\4 this is not a zip" * 10))
    _expect_failure(run_launcher(exe, boinc_slot), "not a zip")


def test_archive_without_config_is_a_clear_error(boinc_slot, native_launcher):
    exe = _install(boinc_slot, native_launcher, _bytes_file(boinc_slot, _zip({"python3": b"x"})))
    _expect_failure(run_launcher(exe, boinc_slot), RUNTIME_CONFIG_NAME)


def test_interpreter_missing_from_runtime_is_a_clear_error(boinc_slot, native_launcher):
    archive = _zip({RUNTIME_CONFIG_NAME: b"interpreter = bin/python3\narg = -m\n"})
    exe = _install(boinc_slot, native_launcher, _bytes_file(boinc_slot, archive))
    _expect_failure(run_launcher(exe, boinc_slot), "bin/python3", "missing")


def test_entries_escaping_the_runtime_are_refused(boinc_slot, native_launcher):
    archive = _zip({RUNTIME_CONFIG_NAME: b"interpreter = x\n", "../../../escaped.txt": b"evil"})
    exe = _install(boinc_slot, native_launcher, _bytes_file(boinc_slot, archive))
    _expect_failure(run_launcher(exe, boinc_slot), "unsafe entry name")
    assert not list(boinc_slot.root.rglob("escaped.txt"))
    assert not [p for p in boinc_slot.project_dir.iterdir() if ".unpack" in p.name]


def test_corrupted_entry_fails_its_crc_check(boinc_slot, native_launcher):
    archive = bytearray(_zip({RUNTIME_CONFIG_NAME: b"interpreter = x\n", "data": b"A" * 1000},
                             compression=zipfile.ZIP_STORED))
    at = archive.index(b"A" * 1000)
    archive[at + 500] = ord("B")
    exe = _install(boinc_slot, native_launcher, _bytes_file(boinc_slot, bytes(archive)))
    _expect_failure(run_launcher(exe, boinc_slot), "CRC")


def test_unknown_platform_is_a_clear_build_error(tmp_path):
    with pytest.raises(LauncherBuildError, match="known: windows_x86_64, x86_64-pc-linux-gnu"):
        build_launcher("sparc-sun-solaris", tmp_path)


def test_missing_build_tools_are_clear_errors(tmp_path, monkeypatch):
    only_cmake = tmp_path / "bin"
    only_cmake.mkdir()
    (only_cmake / "cmake").symlink_to(shutil.which("cmake"))
    monkeypatch.setenv("PATH", str(only_cmake))
    with pytest.raises(LauncherBuildError, match="x86_64-w64-mingw32-g\\+\\+ is not installed"):
        build_launcher("windows_x86_64", tmp_path / "out")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(LauncherBuildError, match="cmake is not installed"):
        build_launcher("x86_64-pc-linux-gnu", tmp_path / "out")


def test_worker_runs_through_the_launcher_in_a_boinc_slot(boinc_slot, native_launcher, make_runtime_archive,
                                                          tmp_path):
    """Launcher + a Python interpreter + ``python -m boinc_pymw.worker`` in a BOINC-style slot.

    The interpreter is the host's python3.11 binary copied into the runtime
    (the portable one is tested in tests/runtime); the app's code comes
    through the app_code.zip soft link, input and output through theirs.
    """
    python = os.path.realpath(shutil.which("python3.11") or sys.executable)
    archive = make_runtime_archive(python, "bin/python3", ["-m", "boinc_pymw.worker"])
    exe = _install(boinc_slot, native_launcher, archive)
    boinc_slot.add("app_code.zip", "app_code_1.0.zip",
                   _zip({"slot_tasks.py": b"def power_sum(n, p=1):\n    return sum(i ** p for i in range(n + 1))\n"}))
    boinc_slot.add("input.json", "wu_7_input",
                   json.dumps({"function": "slot_tasks:power_sum", "args": [10], "kwargs": {"p": 2}}).encode())
    output = boinc_slot.link("output.json", "wu_7_r0_output")
    package_parent = os.path.dirname(os.path.dirname(__import__("boinc_pymw").__file__))

    done = run_launcher(exe, boinc_slot, env={**os.environ, "PYTHONPATH": package_parent})

    assert done.returncode == 0, done.stderr.decode()
    assert json.loads(output.read_text()) == {"ok": True, "value": 385}


def _zip(files, compression=zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def _bytes_file(slot, data: bytes):
    path = slot.root / "archive.bin"
    path.write_bytes(data)
    return path


def test_runtime_config_and_packing_refuse_what_the_launcher_would_refuse(tmp_path):
    from boinc_pymw.interpreter_build.launcher_build import pack_runtime_archive, write_runtime_config

    runtime = tmp_path / "runtime"
    runtime.mkdir()
    for interpreter in ("../python3", "/usr/bin/python3", "bin\\python.exe"):
        with pytest.raises(ValueError, match="relative '/' path inside the runtime"):
            write_runtime_config(runtime, interpreter, [])
    with pytest.raises(ValueError, match="newlines or outer spaces"):
        write_runtime_config(runtime, "bin/python3", ["two\nlines"])
    with pytest.raises(LauncherBuildError, match="call write_runtime_config first"):
        pack_runtime_archive(runtime, tmp_path / "r.zip")
    write_runtime_config(runtime, "bin/python3", ["-m", "boinc_pymw.worker"])
    (runtime / "escape").symlink_to("../../etc/passwd")
    with pytest.raises(LauncherBuildError, match="leaves the runtime"):
        pack_runtime_archive(runtime, tmp_path / "r.zip")
    assert not (tmp_path / "r.zip").exists() and not (tmp_path / "r.zip.tmp").exists()
