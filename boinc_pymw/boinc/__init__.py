"""Python bindings for a BOINC project's server side: config, database,
upload/download hierarchy, templates, create-work, signing and daemons."""
