"""BOINC code signing in pure Python: keys in BOINC's text format, file signatures.

Why not ``cryptography``'s ``sign()``: BOINC does not sign a DigestInfo. Its
``sign_file`` takes the file's MD5 as 32 *ASCII lowercase hex* characters and
runs ``RSA_private_encrypt`` with PKCS#1 v1.5 padding (block type 1) over
them. We build that block ourselves and raise it to the private exponent;
``cryptography`` is used for generating and checking keys.

Formats (``lib/crypt.cpp`` in BOINC; checked against ``libboinc_crypt.so.7``
in ``tests/install/``):

* key file: the modulus size in bits as decimal, then the key structure
  after its ``bits`` field as lowercase hex, 32 bytes per line, then ``.``.
  Public: ``n e`` (128 bytes each, big-endian, left-padded with zeros).
  Private: ``n e d`` (128 bytes each) ``p q dmp1 dmq1 iqmp`` (64 bytes each).
* signature text (what ``sign_executable`` prints and what goes into
  ``<file_signature>``): 128 signature bytes as lowercase hex, 32 bytes per
  line, then ``.``.
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path
from typing import Union

from cryptography.hazmat.primitives.asymmetric import rsa

from ..errors import BoincPymwError

PathLike = Union[str, "os.PathLike[str]"]

#: BOINC's MAX_RSA_MODULUS_BITS: its key structures hold at most 1024-bit keys.
KEY_BITS = 1024
PUBLIC_EXPONENT = 65537
_MODULUS_LEN = KEY_BITS // 8          # 128
_PRIME_LEN = _MODULUS_LEN // 2        # 64
_PUBLIC_LAYOUT = (_MODULUS_LEN, _MODULUS_LEN)                       # n e
_PRIVATE_LAYOUT = (_MODULUS_LEN,) * 3 + (_PRIME_LEN,) * 5           # n e d p q dmp1 dmq1 iqmp
_HEX_BYTES_PER_LINE = 32

#: The two key pairs a BOINC project keeps in its key_dir.
KEY_PAIRS = ("code_sign", "upload")


class SigningError(BoincPymwError):
    """A key could not be read or written, or a file could not be signed."""


# -- hex blocks ----------------------------------------------------------------
def _hex_lines(data: bytes) -> str:
    lines = [data[i:i + _HEX_BYTES_PER_LINE].hex()
             for i in range(0, len(data), _HEX_BYTES_PER_LINE)]
    return "".join(line + "\n" for line in lines) + ".\n"


def _parse_hex_lines(text: str, what: str) -> bytes:
    hex_digits = []
    for line in text.splitlines():
        line = line.strip()
        if line == ".":
            break
        hex_digits.append(line)
    else:
        raise SigningError(f"{what}: missing the final '.' line")
    try:
        return bytes.fromhex("".join(hex_digits))
    except ValueError as exc:
        raise SigningError(f"{what}: not hexadecimal ({exc})") from None


def format_signature(signature: bytes) -> str:
    """The text form BOINC's ``sprint_hex_data`` gives a binary signature."""
    return _hex_lines(signature)


def parse_signature(text: str) -> bytes:
    """The binary signature inside a ``<file_signature>`` / ``.sig`` text."""
    return _parse_hex_lines(text, "signature")


# -- keys ------------------------------------------------------------------------
def _fields(numbers, layout) -> bytes:
    return b"".join(n.to_bytes(size, "big") for n, size in zip(numbers, layout))


def format_public_key(key: rsa.RSAPublicKey) -> str:
    """``key`` in BOINC's text key format (what ``crypt_prog -genkey`` writes)."""
    _check_size(key.key_size)
    numbers = key.public_numbers()
    return f"{key.key_size}\n" + _hex_lines(_fields((numbers.n, numbers.e), _PUBLIC_LAYOUT))


def format_private_key(key: rsa.RSAPrivateKey) -> str:
    """``key`` in BOINC's text key format (what ``crypt_prog -genkey`` writes)."""
    _check_size(key.key_size)
    priv = key.private_numbers()
    pub = priv.public_numbers
    values = (pub.n, pub.e, priv.d, priv.p, priv.q, priv.dmp1, priv.dmq1, priv.iqmp)
    return f"{key.key_size}\n" + _hex_lines(_fields(values, _PRIVATE_LAYOUT))


def _check_size(bits: int) -> None:
    if bits != KEY_BITS:
        raise SigningError(f"BOINC keys are {KEY_BITS}-bit RSA keys, not {bits}-bit")


def _split_key_text(text: str, layout, what: str) -> list[int]:
    first, _, rest = text.lstrip().partition("\n")
    try:
        bits = int(first.strip())
    except ValueError:
        raise SigningError(f"{what}: first line must be the key size in bits") from None
    _check_size(bits)
    data = _parse_hex_lines(rest, what)
    if len(data) != sum(layout):
        raise SigningError(f"{what}: expected {sum(layout)} key bytes, found {len(data)}")
    values, offset = [], 0
    for size in layout:
        values.append(int.from_bytes(data[offset:offset + size], "big"))
        offset += size
    return values


def parse_public_key(text: str, what: str = "public key") -> rsa.RSAPublicKey:
    n, e = _split_key_text(text, _PUBLIC_LAYOUT, what)
    try:
        return rsa.RSAPublicNumbers(e, n).public_key()
    except ValueError as exc:
        raise SigningError(f"{what}: not a valid RSA public key ({exc})") from None


def parse_private_key(text: str, what: str = "private key") -> rsa.RSAPrivateKey:
    n, e, d, p, q, dmp1, dmq1, iqmp = _split_key_text(text, _PRIVATE_LAYOUT, what)
    numbers = rsa.RSAPrivateNumbers(p, q, d, dmp1, dmq1, iqmp, rsa.RSAPublicNumbers(e, n))
    try:
        return numbers.private_key()
    except ValueError as exc:
        raise SigningError(f"{what}: not a valid RSA private key ({exc})") from None


def _read_text(path: PathLike, what: str) -> str:
    try:
        return Path(path).read_text(encoding="ascii")
    except FileNotFoundError:
        raise SigningError(f"{what} {os.fspath(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SigningError(f"cannot read {what} {os.fspath(path)!r}: {exc}") from None


def read_private_key(path: PathLike) -> rsa.RSAPrivateKey:
    return _cached_key(parse_private_key, "private key", path)


def read_public_key(path: PathLike) -> rsa.RSAPublicKey:
    return _cached_key(parse_public_key, "public key", path)


def _cached_key(parse, what: str, path: PathLike):
    """Parse a key file once while it is unchanged: checking an RSA key costs
    more than a signature, and a project signs many files with one key."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise SigningError(f"{what} {os.fspath(path)!r} does not exist") from None
    except OSError as exc:
        raise SigningError(f"cannot read {what} {os.fspath(path)!r}: {exc}") from None
    return _parse_key_file(parse, what, os.path.realpath(path),
                           (st.st_ino, st.st_size, st.st_mtime_ns))


@functools.lru_cache(maxsize=16)
def _parse_key_file(parse, what: str, path: str, _identity: tuple):
    return parse(_read_text(path, what), f"{what} {path}")


def generate_private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=PUBLIC_EXPONENT, key_size=KEY_BITS)


def _write_new(path: Path, text: str, mode: int) -> None:
    """Create ``path`` with ``text``; fail (never overwrite) if it exists."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(text)


def generate_keys(key_dir: PathLike) -> dict[str, str]:
    """Create the missing key pairs of a project's key_dir; never overwrite.

    Returns ``{pair: "created" | "kept"}`` for ``code_sign`` and ``upload``.
    A pair with only one of its two files present is an error: the missing
    half cannot be made without replacing the other.
    """
    key_dir = Path(key_dir)
    if not key_dir.is_dir():
        key_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(key_dir, 0o700)     # private whatever the umask (mkdir's mode is masked)
    outcome = {}
    for pair in KEY_PAIRS:
        private, public = key_dir / f"{pair}_private", key_dir / f"{pair}_public"
        present = [p for p in (private, public) if p.exists()]
        if len(present) == 2:
            outcome[pair] = "kept"
            continue
        if present:
            raise SigningError(
                f"{present[0]} exists without its other half; refusing to replace it "
                f"(move it away to generate a new {pair} pair)")
        key = generate_private_key()
        try:
            _write_new(private, format_private_key(key), 0o600)
        except FileExistsError as exc:
            raise SigningError(f"{exc.filename} appeared while writing keys; not overwriting") from None
        try:
            _write_new(public, format_public_key(key.public_key()), 0o644)
        except BaseException as exc:
            private.unlink()   # ours, written a moment ago: leave no half pair behind
            if isinstance(exc, FileExistsError):
                raise SigningError(f"{exc.filename} appeared while writing keys; "
                                   f"not overwriting") from None
            raise
        outcome[pair] = "created"
    return outcome


# -- signatures --------------------------------------------------------------------
def _md5_hex_of_file(path: PathLike) -> str:
    digest = hashlib.md5()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        raise SigningError(f"cannot read {os.fspath(path)!r}: {exc}") from None
    return digest.hexdigest()


def _encoded_message(md5_hex: str) -> bytes:
    """PKCS#1 v1.5 block type 1 around the 32 ASCII characters of ``md5_hex``."""
    message = md5_hex.encode("ascii")
    padding = _MODULUS_LEN - 3 - len(message)
    return b"\x00\x01" + b"\xff" * padding + b"\x00" + message


def sign_md5(md5_hex: str, private_key: rsa.RSAPrivateKey) -> str:
    """The signature text of a file whose MD5 is ``md5_hex``."""
    k = private_key.private_numbers()
    block = int.from_bytes(_encoded_message(md5_hex.lower()), "big")
    # block^d mod n through the Chinese remainder theorem, as OpenSSL computes it
    m1, m2 = pow(block, k.dmp1, k.p), pow(block, k.dmq1, k.q)
    signature = m2 + k.q * ((k.iqmp * (m1 - m2)) % k.p)
    return format_signature(signature.to_bytes(_MODULUS_LEN, "big"))


def sign_file(path: PathLike, private_key_path: PathLike) -> str:
    """What BOINC's ``sign_executable PATH PRIVATE_KEY`` prints for this file."""
    return sign_md5(_md5_hex_of_file(path), read_private_key(private_key_path))


def verify_md5(md5_hex: str, signature_text: str, public_key: rsa.RSAPublicKey) -> bool:
    """True if ``signature_text`` signs ``md5_hex`` for ``public_key``."""
    try:
        signature = parse_signature(signature_text)
    except SigningError:
        return False
    numbers = public_key.public_numbers()
    value = int.from_bytes(signature, "big")
    if len(signature) != _MODULUS_LEN or value >= numbers.n:
        return False
    recovered = pow(value, numbers.e, numbers.n).to_bytes(_MODULUS_LEN, "big")
    return recovered == _encoded_message(md5_hex.lower())


def verify_file(path: PathLike, signature_text: str, public_key_path: PathLike) -> bool:
    """True if ``signature_text`` is a valid signature of the file at ``path``."""
    return verify_md5(_md5_hex_of_file(path), signature_text, read_public_key(public_key_path))
