"""What a failed result's stderr_out becomes in WorkunitFailed: the client's
message and the tail of stderr.txt, whatever a hostile volunteer sends."""

from boinc_pymw.backends.boinc.outcomes import stderr_excerpt


def test_message_and_stderr_tail():
    text = ("<core_client_version>7.20.5</core_client_version>\n<![CDATA[\n"
            "<message>process exited with code 3</message>\n<stderr_txt>\nline 1\nboom\n"
            "</stderr_txt>\n]]>")
    assert stderr_excerpt(text) == "process exited with code 3\nline 1\nboom"
    assert stderr_excerpt(text.encode()) == "process exited with code 3\nline 1\nboom"
    assert stderr_excerpt("plain text, no tags") == "plain text, no tags"
    assert stderr_excerpt(None) == ""


def test_unclosed_tags_from_a_hostile_volunteer():
    assert stderr_excerpt("<message>never closed <stderr_txt>tail") == "tail"
    assert stderr_excerpt("<stderr_txt>" + "x" * 5000, limit=10) == "...\n" + "x" * 10
    # 1 MB of unclosed tags: the regex once used here restarted at each of them
    # (quadratic: 1.8 s per 64 KiB, hours for this); two str.find scans are linear
    hostile = "<message>" * 120_000 + "<stderr_txt>" * 1000 + "end"
    assert stderr_excerpt(hostile, limit=20).endswith("<stderr_txt>end")
