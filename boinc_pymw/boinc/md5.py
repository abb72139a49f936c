"""md5 of a file's bytes, read in blocks (BOINC's md5_file): create-work,
install-app and the local client all check files by it."""

from __future__ import annotations

import hashlib
import os
from typing import Union


def md5_and_size(path: Union[str, os.PathLike]) -> tuple[str, float]:
    """(hex md5, size in bytes as BOINC's double) of a file."""
    digest = hashlib.md5()
    nbytes = 0
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
            nbytes += len(block)
    return digest.hexdigest(), float(nbytes)


def file_md5(path: Union[str, os.PathLike]) -> str:
    """The hex md5 of a file's bytes."""
    return md5_and_size(path)[0]
