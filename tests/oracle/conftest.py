"""The compiled BOINC oracle, shared by every test in this directory."""

import pytest


@pytest.fixture(scope="session")
def oracle_exe():
    from oracle import boinc_oracle

    return boinc_oracle()


def parse_fields(text: str) -> dict:
    """The oracle's key=value lines (and the <<<XML ... XML>>> block) as a dict."""
    fields, lines = {}, iter(text.splitlines())
    for line in lines:
        if line == "<<<XML":
            body = []
            for inner in lines:
                if inner == "XML>>>":
                    break
                body.append(inner)
            fields["xml_doc"] = "\n".join(body)
            continue
        key, sep, value = line.partition("=")
        if sep:
            fields[key] = value
    return fields
