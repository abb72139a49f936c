"""Keys and signatures from boinc_pymw.boinc.signing, judged by libboinc_crypt."""

from __future__ import annotations

import hashlib
import os
import stat

import pytest

from boinc_pymw.boinc import signing
from boinc_pymw.cli import main as cli_main


@pytest.fixture(scope="module")
def key_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("keys")
    signing.generate_keys(path)
    return path


@pytest.fixture
def program(tmp_path):
    path = tmp_path / "worker_1.0_x86_64-pc-linux-gnu"
    path.write_bytes(os.urandom(70_001) + b"\x00API_VERSION_7.20.5\x00")
    return path


def test_generated_keys_have_boinc_layout_and_boinc_reprints_them_identically(key_dir, boinc_crypt):
    for pair in signing.KEY_PAIRS:
        private, public = key_dir / f"{pair}_private", key_dir / f"{pair}_public"
        assert len(private.read_text().splitlines()) == 24
        assert len(public.read_text().splitlines()) == 10
        assert private.read_text().splitlines()[0] == "1024"
        assert stat.S_IMODE(private.stat().st_mode) == 0o600
        # scan_key_hex then print_key_hex must give back our text byte for byte
        assert boinc_crypt.reprint_key("private", private) == private.read_text()
        assert boinc_crypt.reprint_key("public", public) == public.read_text()


def test_signature_is_byte_identical_to_boinc_sign_file(key_dir, program, boinc_crypt):
    ours = signing.sign_file(program, key_dir / "code_sign_private")
    assert ours == boinc_crypt.sign(program, key_dir / "code_sign_private")
    assert ours.endswith("\n.\n") and len(ours.splitlines()) == 5


@pytest.mark.parametrize("v2", [True, False], ids=["check_file_signature2", "check_file_signature"])
def test_boinc_accepts_our_signature_and_rejects_a_changed_file(key_dir, program, tmp_path, boinc_crypt, v2):
    sig = tmp_path / "program.sig"
    sig.write_text(signing.sign_file(program, key_dir / "code_sign_private"))
    assert boinc_crypt.accepts(program, sig, key_dir / "code_sign_public", v2=v2)

    data = bytearray(program.read_bytes())
    data[12345] ^= 0x01
    program.write_bytes(bytes(data))
    assert not boinc_crypt.accepts(program, sig, key_dir / "code_sign_public", v2=v2)


def test_boinc_rejects_a_signature_made_with_another_key(key_dir, program, tmp_path, boinc_crypt):
    sig = tmp_path / "program.sig"
    sig.write_text(signing.sign_file(program, key_dir / "upload_private"))
    assert not boinc_crypt.accepts(program, sig, key_dir / "code_sign_public")
    assert not signing.verify_file(program, sig.read_text(), key_dir / "code_sign_public")


def test_keys_made_by_boinc_are_read_and_sign_like_boinc(tmp_path, program, boinc_crypt):
    private, public = tmp_path / "p", tmp_path / "q"
    boinc_crypt.genkey(private, public)
    key = signing.read_private_key(private)
    assert signing.format_private_key(key) == private.read_text()
    assert signing.format_public_key(signing.read_public_key(public)) == public.read_text()
    assert signing.sign_file(program, private) == boinc_crypt.sign(program, private)


def test_verify_file_agrees_with_boinc_on_good_and_changed_files(key_dir, program):
    text = signing.sign_file(program, key_dir / "code_sign_private")
    assert signing.verify_file(program, text, key_dir / "code_sign_public")
    program.write_bytes(program.read_bytes() + b"!")
    assert not signing.verify_file(program, text, key_dir / "code_sign_public")
    assert not signing.verify_file(program, "zz\n.\n", key_dir / "code_sign_public")


def test_sign_md5_matches_sign_file(key_dir, program):
    md5 = hashlib.md5(program.read_bytes()).hexdigest()
    key = signing.read_private_key(key_dir / "code_sign_private")
    assert signing.sign_md5(md5, key) == signing.sign_file(program, key_dir / "code_sign_private")


def test_generate_never_overwrites(tmp_path):
    first = signing.generate_keys(tmp_path)
    assert first == {"code_sign": "created", "upload": "created"}
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert signing.generate_keys(tmp_path) == {"code_sign": "kept", "upload": "kept"}
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_a_half_pair_is_an_error_and_stays_untouched(tmp_path):
    (tmp_path / "code_sign_private").write_text("precious\n")
    with pytest.raises(signing.SigningError, match="without its other half"):
        signing.generate_keys(tmp_path)
    assert (tmp_path / "code_sign_private").read_text() == "precious\n"
    assert not (tmp_path / "code_sign_public").exists()


@pytest.mark.parametrize("text, message", [
    ("", "key size"),
    ("2048\n00\n.\n", "1024-bit"),
    ("1024\nabcd\n", "final '.'"),
    ("1024\nzz\n.\n", "not hexadecimal"),
    ("1024\nabcd\n.\n", "expected 704 key bytes"),
])
def test_bad_private_key_files_give_clear_errors(tmp_path, text, message):
    path = tmp_path / "code_sign_private"
    path.write_text(text)
    with pytest.raises(signing.SigningError, match=message):
        signing.read_private_key(path)


def test_missing_key_is_a_clear_error(tmp_path, program):
    with pytest.raises(signing.SigningError, match="does not exist"):
        signing.sign_file(program, tmp_path / "nope")


def test_keys_generate_command(tmp_path, capsys):
    target = tmp_path / "keys"
    assert cli_main(["keys", "generate", str(target)]) == 0
    assert "created" in capsys.readouterr().out
    assert sorted(p.name for p in target.iterdir()) == [
        "code_sign_private", "code_sign_public", "upload_private", "upload_public"]
    before = (target / "code_sign_private").read_bytes()
    assert cli_main(["keys", "generate", str(target)]) == 0
    assert "kept" in capsys.readouterr().out
    assert (target / "code_sign_private").read_bytes() == before
    (target / "upload_public").unlink()
    assert cli_main(["keys", "generate", str(target)]) == 1
    assert "refusing" in capsys.readouterr().err


def test_a_replaced_key_file_is_read_again(tmp_path, program, boinc_crypt):
    first, second = tmp_path / "a", tmp_path / "b"
    signing.generate_keys(first)
    signing.generate_keys(second)
    key = tmp_path / "code_sign_private"
    key.write_bytes((first / "code_sign_private").read_bytes())
    assert signing.sign_file(program, key) == boinc_crypt.sign(program, first / "code_sign_private")
    tmp = tmp_path / "new_key"
    tmp.write_bytes((second / "code_sign_private").read_bytes())
    os.replace(tmp, key)
    assert signing.sign_file(program, key) == boinc_crypt.sign(program, second / "code_sign_private")
