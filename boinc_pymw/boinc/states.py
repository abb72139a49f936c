"""BOINC's state constants (db/boinc_db_types.h, lib/common_defs.h) as enums.

IntEnum so that they go into SQL parameters unchanged and compare equal to
the integers read back from the database.
"""

from __future__ import annotations

import enum


class ServerState(enum.IntEnum):
    INACTIVE = 1
    UNSENT = 2
    IN_PROGRESS = 4
    OVER = 5


class Outcome(enum.IntEnum):
    INIT = 0
    SUCCESS = 1
    COULDNT_SEND = 2
    CLIENT_ERROR = 3
    NO_REPLY = 4
    DIDNT_NEED = 5
    VALIDATE_ERROR = 6
    CLIENT_DETACHED = 7


class ClientState(enum.IntEnum):
    NEW = 0
    FILES_DOWNLOADING = 1
    FILES_DOWNLOADED = 2
    COMPUTE_ERROR = 3
    FILES_UPLOADING = 4
    FILES_UPLOADED = 5
    ABORTED = 6
    UPLOAD_FAILED = 7


class ValidateState(enum.IntEnum):
    INIT = 0
    VALID = 1
    INVALID = 2
    NO_CHECK = 3
    INCONCLUSIVE = 4
    TOO_LATE = 5


class AssimilateState(enum.IntEnum):
    INIT = 0
    READY = 1
    DONE = 2


class FileDeleteState(enum.IntEnum):
    INIT = 0
    READY = 1
    DONE = 2
    ERROR = 3


class WuError(enum.IntFlag):
    """Bits of ``workunit.error_mask``."""

    COULDNT_SEND_RESULT = 1
    TOO_MANY_ERROR_RESULTS = 2
    TOO_MANY_SUCCESS_RESULTS = 4
    TOO_MANY_TOTAL_RESULTS = 8
    CANCELLED = 16
    NO_CANONICAL_RESULT = 32


_WU_ERROR_TEXT = {
    WuError.COULDNT_SEND_RESULT: "a result could not be sent to any host",
    WuError.TOO_MANY_ERROR_RESULTS: "too many results ended in error (max_error_results reached)",
    WuError.TOO_MANY_SUCCESS_RESULTS: "too many successful results without consensus (max_success_results reached)",
    WuError.TOO_MANY_TOTAL_RESULTS: "too many results in total (max_total_results reached)",
    WuError.CANCELLED: "the workunit was cancelled",
    WuError.NO_CANONICAL_RESULT: "no canonical result was found",
}


def describe_error_mask(mask: int) -> str:
    """Explain ``workunit.error_mask`` for humans, e.g. in a failed future."""
    if not mask:
        return "no error"
    parts = [text for bit, text in _WU_ERROR_TEXT.items() if mask & bit]
    unknown = mask & ~sum(_WU_ERROR_TEXT)
    if unknown:
        parts.append(f"unknown error bits 0x{unknown:x}")
    return "; ".join(parts)


class TransitionerFlags(enum.IntFlag):
    NONE = 0
    TRANSITION_NONE = 1
    NO_NEW_RESULTS = 2


#: workunit.transition_time value that keeps the transitioner away (validator race guard)
INT_MAX = 2**31 - 1
