"""jinja2 templates for BOINC workunit (input) and result (output) templates,
version.xml and the other XML files the toolkit writes."""
