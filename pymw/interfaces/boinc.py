"""PyMW's BOINC interface: boinc-pymw's BOINC back end (``-i boinc``).

The project needs the app installed with ``boinc_pymw install-app`` (the task
functions come from its code, not from the script) and the result-store
assimilator; see the README's "BOINC back end".
"""

from ._base import Interface, ignored


class BOINCInterface(Interface):
    backend = "boinc"

    def __init__(self, project_home, custom_app_dir=None, custom_args=[], task_path="tasks"):
        if custom_app_dir:
            ignored("custom_app_dir (-c)", "volunteers run boinc-pymw's launcher and portable "
                    "interpreter, installed with `boinc_pymw install-app`")
        if any(custom_args or ()):
            ignored("custom_args (-a)", "the app version's command line comes from install-app")
        super().__init__(None, **({"project": project_home} if project_home else {}))

    def set_boinc_args(self, target_nresults=2, min_quorum=1, max_nbytes=65536):
        """Replication of each workunit (call before creating the PyMW_Master)."""
        self.options.update(target_nresults=int(target_nresults), min_quorum=int(min_quorum))
        if max_nbytes != 65536:
            ignored("max_nbytes", "the output size limit is in the app's output template "
                    "(templates/APP_out)")


class BOINCLocalInterface(Interface):
    """boinc-pymw's local debug mode (``-i boinc-local``): BOINC's pipeline on
    this machine, no server needed."""

    backend = "boinc-local"

    def __init__(self, project_home=None, num_workers=None):
        super().__init__(num_workers, **({"project": project_home} if project_home else {}))
