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


def count_with_checkpoints(n, pause):
    """Count to n, a step per `pause` seconds, checkpointing whenever the client says it is time.

    The answer says at which count this start resumed, so a test can tell a
    resumed run from one that started over.
    """
    import time

    from boinc_pymw import checkpoint, restore

    i, resumed_at = restore(default=[0, 0])
    resumed_at = i
    while i < n:
        time.sleep(pause)
        i += 1
        checkpoint([i, resumed_at])
    return {"count": i, "resumed_at": resumed_at}
