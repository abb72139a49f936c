"""``mpiexec -n N+1 python -m boinc_pymw.backends.mpi script.py ...``: rank 0
runs the script as the master, ranks 1..N serve its tasks."""

import sys

from ._runtime import main

sys.exit(main())
