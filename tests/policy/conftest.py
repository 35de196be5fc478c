"""Shared fixture: one policy engine per session (loading the lexicons costs a little)."""

from __future__ import annotations

import pytest

from relay.policy import PolicyEngine


@pytest.fixture(scope="session")
def engine() -> PolicyEngine:
    return PolicyEngine.load()
