"""Sample configuration files (config.xml fragments, project settings)."""
