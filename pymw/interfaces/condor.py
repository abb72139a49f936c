"""PyMW's Condor interface: boinc-pymw's HTCondor back end."""

from ._base import Interface, ignored


class CondorInterface(Interface):
    """``python_loc`` names the Python on the execute machines."""

    backend = "condor"

    def __init__(self, python_loc="", condor_submit_loc=""):
        if condor_submit_loc:
            ignored("condor_submit_loc", "jobs are submitted through HTCondor's Python bindings")
        super().__init__(None, **({"python": python_loc} if python_loc else {}))
