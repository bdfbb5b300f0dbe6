"""The test suite (pytest-django); shared fixtures in conftest.py."""
