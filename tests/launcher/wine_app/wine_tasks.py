"""Task functions the Windows runtime tests run through the launcher under wine."""

import sys

import boinc


def describe(n):
    """What the task saw: the platform, the boinc module's view of the slot, and a sum."""
    data = boinc.init_data()
    return {
        "platform": sys.platform,
        "standalone": boinc.is_standalone(),
        "wu_name": data["wu_name"],
        "boinc_api": boinc.api_version,
        "total": sum(range(n + 1)),
    }
