"""Root conftest: loads the dlncheck claims plugin (and pytester for the plugin's own tests)."""

pytest_plugins = ["dlncheck.suite.plugin", "pytester"]
