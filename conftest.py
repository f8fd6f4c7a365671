"""Root conftest: loads the dlncheck claims plugin for both `claims/` and `tests/`."""
pytest_plugins = ["dlncheck.pytest_plugin"]
