"""Share the loopback DNS fixture (harmless if tests/conftest.py imports it too)."""

from tests.support.fixtures import dns_server  # noqa: F401
