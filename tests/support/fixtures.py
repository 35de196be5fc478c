"""Pytest fixtures from tests/support; import them in tests/conftest.py to share them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.dnsserver import DNSServer


@pytest.fixture
def dns_server() -> Iterator[DNSServer]:
    """A loopback DNS server, started for one test and stopped after it."""
    server = DNSServer().start()
    try:
        yield server
    finally:
        server.stop()
