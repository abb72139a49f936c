"""Bitwise validator: results agree when their output files are byte-identical.

The Python counterpart of BOINC's ``sample_bitwise_validator``: each output
file is reduced to its MD5 (files marked ``<no_validate/>`` are skipped, a
missing ``<optional/>`` file counts as empty), and two results match when
all digests are equal. ``--is_gzip`` ignores the 10-byte gzip header
(whose timestamp differs between hosts). Files are digested in 1 MiB pieces,
so memory does not grow with the size of the outputs.

    <daemon><cmd>pymw_bitwise_validator --app myapp</cmd></daemon>
"""

from __future__ import annotations

import hashlib
import sys

from boinc_pymw.boinc.validator import Validator

GZIP_HEADER_BYTES = 10


class BitwiseValidator(Validator):
    """Results match when every output file has the same bytes."""

    @classmethod
    def add_arguments(cls, parser):
        super().add_arguments(parser)
        parser.add_option("is_gzip", action="store_true",
                          help="outputs are gzip files: skip the 10-byte header")

    def init_result(self, result):
        skip_header = GZIP_HEADER_BYTES if getattr(self.options, "is_gzip", False) else 0
        digests = []
        for f in self.output_files(result):
            if f.no_validate:
                continue
            digest = hashlib.md5()
            skip = skip_header
            chunks = self.output_chunks(f)
            for chunk in chunks or ():
                if skip:
                    chunk, skip = chunk[skip:], max(0, skip - len(chunk))
                digest.update(chunk)
            digests.append(digest.hexdigest())
        return digests

    def compare(self, data1, data2):
        return data1 == data2


if __name__ == "__main__":
    sys.exit(BitwiseValidator.main())
