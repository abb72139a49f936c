"""Checks a remote Master makes before it submits anything.

* the project's web RPCs answer (``ping``: the PHP reaches its database);
* the account may submit to the app, and the app exists with templates
  (``get_templates``, which checks submit permissions as the PHP does);
* the app has a current version (``apps.php?xml=1``);
* the app's templates fit boinc_pymw jobs: one input file, and an output
  file opened as ``output.json`` (its position is the ``file_num`` that
  get_output.php takes);
* the called function is one of the entry points of the newest version's
  code (``<app>_<X.Y>_code.zip`` in the project's download directory, as
  ``install-app --code`` puts it there), by the rule the worker applies on
  volunteers (``worker/entry_points.py``: the zip's manifest, else its
  public top-level functions), so a call they would refuse fails here.
"""

from __future__ import annotations

import logging
import os
import tempfile
import zipfile
from dataclasses import dataclass
from typing import Optional

from ...errors import BoincPymwError
from ._rpc import BoincRpcError, RemoteError, SubmitClient

log = logging.getLogger("boinc_pymw.backends.boinc.remote")

#: the worker's files (boinc/app_install.py JOB_INPUT_NAME / JOB_OUTPUT_NAME)
OUTPUT_OPEN_NAME = "output.json"
#: largest code archive read for the entry-point check
MAX_CODE_ZIP_BYTES = 64 * 1024 * 1024


class SubmissionRefused(RemoteError):
    """The project would not run this Master's calls (checked before submitting)."""


_HINTS = {
    "bad authenticator": "the project has no account with this authenticator",
    "no submit access": "this account may not submit jobs remotely; the project's admin "
                        "can allow it: boinc_pymw submitters add EMAIL --app {app}",
    "no app submit access": "this account may not submit jobs to app {app}; the project's "
                            "admin can allow it: boinc_pymw submitters add EMAIL --app {app}",
    "template file missing": "app {app} has no input/output templates on the project "
                             "(boinc_pymw install-app writes them)",
}


def server_hint(message: str) -> str:
    """What the project's admin must fix, for refusals caused by the server's setup."""
    if message.startswith(("can't write to file", "can't copy file", "could not move",
                           "file operation failed")):
        return (" (the web server must be able to write the project's download/ directory "
                "and its fan-out subdirectories: see the README, Remote submission)")
    if message.startswith("create_work failed"):
        return " (the project's bin/create_work refused the jobs)"
    return ""


def explain_refusal(exc: BoincRpcError, app: str) -> SubmissionRefused:
    message = exc.message
    for key, hint in _HINTS.items():
        if message == key:
            return SubmissionRefused(f"{hint.format(app=app)} ({exc})")
    if message.startswith("app not found"):
        return SubmissionRefused(f"the project has no app {app!r} ({exc})")
    return SubmissionRefused(str(exc))


@dataclass(frozen=True)
class AppFacts:
    version_num: int            # newest current version (100 * X + Y)
    output_file_num: int        # get_output.php file_num of output.json


def output_file_num(output_template) -> int:
    """Position of the output file opened as output.json among the template's file_infos."""
    infos = output_template.findall("file_info")
    tags = []
    for info in infos:
        name = info.find("name")
        tags.append(name[0].tag if name is not None and len(name) else
                    (name.text or "").strip() if name is not None else "")
    for ref in output_template.iter("file_ref"):
        if (ref.findtext("open_name") or "").strip() != OUTPUT_OPEN_NAME:
            continue
        file_name = ref.find("file_name")
        if file_name is None:
            continue
        key = file_name[0].tag if len(file_name) else (file_name.text or "").strip()
        if key in tags:
            return tags.index(key)
    if len(infos) == 1:
        return 0
    raise SubmissionRefused(f"the app's output template opens no file as {OUTPUT_OPEN_NAME}")


def check_app(client: SubmitClient, app: str) -> AppFacts:
    """Permissions, templates and a current version of ``app``; raises SubmissionRefused."""
    try:
        client.ping()                        # the web site and its database answer
    except BoincRpcError as exc:
        raise SubmissionRefused(f"{client.url} does not take requests now: {exc}") from None
    try:
        templates = client.get_templates(app)
    except BoincRpcError as exc:
        raise explain_refusal(exc, app) from None
    input_template = templates.find("input_template")
    output_template = templates.find("output_template")
    if input_template is None or output_template is None:
        raise SubmissionRefused(f"app {app}'s templates on the project are not "
                                f"<input_template>/<output_template> documents")
    n_inputs = len(input_template.findall("file_info"))
    if n_inputs != 1:
        raise SubmissionRefused(f"app {app}'s input template takes {n_inputs} files; a "
                                f"boinc_pymw job sends one (input.json): install the app "
                                f"with boinc_pymw install-app")
    versions = client.app_versions().get(app) or []
    if not versions:
        raise SubmissionRefused(f"app {app} has no current app version on the project: "
                                f"install one (boinc_pymw install-app --app {app} ...)")
    return AppFacts(version_num=max(v[1] for v in versions),
                    output_file_num=output_file_num(output_template))


def version_strings(version_num: int) -> list:
    """The directory names install-app may have been given for ``version_num``."""
    major, minor = divmod(int(version_num), 100)
    return list(dict.fromkeys([f"{major}.{minor}", f"{major}.{minor:02d}"]))


def entry_points_of_archive(archive: bytes):
    """The worker's entry points (worker/entry_points.py) of a code zip given as bytes:
    its manifest, else the public top-level functions of its modules (read with
    ``ast``: nothing of it runs here)."""
    from ...worker.entry_points import EntryPoints as WorkerEntryPoints

    with tempfile.TemporaryDirectory(prefix="boinc_pymw_code_") as tmp:
        path = os.path.join(tmp, "app_code.zip")
        with open(path, "wb") as f:
            f.write(archive)
        return WorkerEntryPoints.of_code([path])


class EntryPoints:
    """The functions volunteers will run for the app's newest version, read from its
    code zip (fetched once, when first needed) with the worker's own rule."""

    def __init__(self, client: SubmitClient, app: str, version_num: int,
                 download_url: Optional[str] = None):
        self.client = client
        self.app = app
        self.version_num = version_num
        self.download_url = (download_url or client.url + "download").rstrip("/") + "/"
        self._points = None
        self._loaded = False
        self.source = ""

    def _load(self):
        if self._loaded:
            return self._points
        self._loaded = True
        for version in version_strings(self.version_num):
            name = f"{self.app}_{version}_code.zip"
            data = self.client.download(self.download_url + name, MAX_CODE_ZIP_BYTES)
            if data is None:
                continue
            try:
                self._points = entry_points_of_archive(data)
            except (zipfile.BadZipFile, BoincPymwError) as exc:
                log.warning("%s cannot be read (%s): calls are not checked against the "
                            "app's code", name, exc)
                return None
            self.source = name
            return self._points
        log.warning("no code archive %s_%s_code.zip under %s: calls are not checked "
                    "against the app's code", self.app, version_strings(self.version_num)[0],
                    self.download_url)
        return None

    def check(self, reference: str) -> None:
        """Raise SubmissionRefused when volunteers would refuse ``module:function``."""
        points = self._load()
        if points is None:
            return      # nothing to check against (warned once)
        from ...worker.entry_points import EntryPointRefused

        try:
            points.check(reference)
        except EntryPointRefused as exc:
            raise SubmissionRefused(f"app {self.app} ({self.source}): {exc}") from None
