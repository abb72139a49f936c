"""The results store is made as BOINC makes project directories (0771, files 0644),
whatever the umask the assimilator runs under (issue 12 item 2)."""

import os
import stat

from boinc_pymw.daemons.result_store import ResultStoreAssimilator, read_record

from .conftest import run_daemon
from .test_assimilator import validated_wu


def test_store_directories_and_files_ignore_the_umask(world):
    validated_wu(world, "permwu", outputs=((b"7\n",), (b"7\n",)))
    store = world.project.path + "/store"
    old = os.umask(0o077)
    try:
        assert run_daemon(ResultStoreAssimilator, world.project, "--store", store) == 0
    finally:
        os.umask(old)
    assert read_record(store, "testapp", "permwu")["status"] == "done"
    for directory in (store, f"{store}/testapp", f"{store}/testapp/permwu"):
        assert stat.S_IMODE(os.stat(directory).st_mode) == 0o771, directory
    files = [os.path.join(root, name) for root, _, names in os.walk(store) for name in names]
    assert files
    for path in files:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o644, path
