"""The client side, emulated on one machine for ``-i boinc-local`` and tests.

``slots``: a BOINC client's project and slot directories, run by our own
slot runner or by the real BOINC client from a hand-written client state.
``simulate``: BOINC's transitioner, scheduler and client bookkeeping played
on a project database, so daemons can be driven without a live server.
Nothing in :mod:`boinc_pymw.boinc` (what a server admin reads) imports this.
"""
