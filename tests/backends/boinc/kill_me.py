"""A Master run that the reattach tests kill half-way (argv: interface options as JSON)."""

import json
import sys

from boinc_pymw import Master

from backends.boinc import tasks

options = json.loads(sys.argv[1])
calls = json.loads(sys.argv[2])
with Master(**options) as master:
    for value in master.map(tasks.logged_square, *zip(*calls)):
        print(value, flush=True)
