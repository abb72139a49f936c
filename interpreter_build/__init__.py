"""The pipeline that builds the portable, BOINC-API-linked Python runtime."""
