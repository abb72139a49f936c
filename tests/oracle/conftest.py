"""The compiled BOINC oracle, shared by every test in this directory."""

import pytest


@pytest.fixture(scope="session")
def oracle_exe():
    from oracle import boinc_oracle

    return boinc_oracle()
