"""Ready BOINC daemons (validators, assimilators) built on boinc_pymw.boinc."""
