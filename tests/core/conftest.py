"""Fixtures for tests/core."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import test_settings as settings_at  # not collected as a test


@pytest.fixture
def lite_settings(tmp_path: Path) -> Callable[..., Any]:
    """SQLite only, for tests of routing and SMTP transport that the database does not
    affect (the issue: "the database-facing ones also on PostgreSQL")."""

    def make(**sections: dict[str, Any]) -> Any:
        return settings_at(f"sqlite+aiosqlite:///{tmp_path}/relay.sqlite3", **sections)

    return make
