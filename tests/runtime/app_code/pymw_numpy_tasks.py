"""A task that uses numpy, which the app version carries (tests/runtime/test_packages.py)."""

import os
import sys


def numpy_facts(n):
    """What numpy the task sees, where it came from, and a computation with it."""
    import numpy

    matrix = numpy.array([[2.0, 1.0], [1.0, 3.0]])
    return {
        "version": numpy.__version__,
        "from_packages": ".unpacked-" in os.path.abspath(numpy.__file__),
        "host_site_packages": [p for p in sys.path if p.endswith(("site-packages", "dist-packages"))],
        "sum": float(numpy.arange(n, dtype=numpy.float64).sum()),
        "det": round(float(numpy.linalg.det(matrix)), 9),
    }
