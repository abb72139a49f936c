"""Task functions the BOINC back-end tests run on workers (importable by name)."""

import os
import signal


def square(x):
    return x * x


def add(a, b=0):
    return a + b


def raises(message):
    raise ValueError(message)


def crashes():
    os.kill(os.getpid(), signal.SIGSEGV)


def writes_garbage():
    """Replace the worker's answer with bytes that are not a worker output."""
    import atexit

    import boinc_pymw.worker.runner as runner

    def garbage(_document):
        return b"\x00\xffnot json at all"

    runner.encode_output = garbage
    return 1


def logged_square(log_dir, x, delay=0.0):
    """x * x, leaving one file per execution in log_dir (to count executions)."""
    import time

    time.sleep(delay)
    with open(os.path.join(log_dir, f"{x}.{os.getpid()}"), "w"):
        pass
    return x * x


def raises_if_odd(x):
    if x % 2:
        raise ValueError(f"odd {x}")
    return x


def square_or_raise(x):
    if not isinstance(x, (int, float)):
        raise ValueError(f"{x!r} is not a number")
    return x * x


def count_in_file(word, name="words.txt"):
    """PyMW's string_counter: how often ``word`` is in a data file of the task's
    working directory (Master.submit_task(..., data_files=[...]))."""
    with open(name) as f:
        return f.read().split().count(word)
