"""Shared fixtures: databases (SQLite always, PostgreSQL when configured), a sink MTA,
a loopback DNS server, and a running relay wired to them."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.fixtures import dns_server  # noqa: F401

PG_URL = os.environ.get("RELAY_TEST_DATABASE_URL", "")
SHARED = Path(__file__).resolve().parents[1].parent / "shared"


# Tests that time a window (a session served beside a flood, a probe's median, a relay
# that must answer within N s of a kill, RSS after a burst): they would measure the test
# beside them, not the relay. `make test` runs them after the rest, one at a time; the
# rest run two at a time (pytest-xdist), since most of their time is waiting on sockets.
SERIAL_MODULES = {
    "tests/core/test_slow_clients.py",
    "tests/core/test_redteam_slow.py",
    "tests/core/test_hostile_messages.py",
    "tests/ops/test_scale_out.py",
    "tests/ops/test_limits_scale_out.py",
    "tests/ops/test_db_outage.py",
    "tests/ops/test_logs.py",
    "tests/ops/test_memory_baseline.py",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = Path(__file__).resolve().parents[1]
    for item in items:
        if item.path.relative_to(root).as_posix() in SERIAL_MODULES:
            item.add_marker(pytest.mark.serial)


def _pg_admin_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


@pytest.fixture(params=["sqlite", "postgresql"])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database: a SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/relay.sqlite3"
        return
    if not PG_URL:
        pytest.skip("PostgreSQL tests need RELAY_TEST_DATABASE_URL (see .ci/run)")
    import asyncpg

    name = f"relay_t_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(_pg_admin_dsn(PG_URL))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base, _, _ = PG_URL.rpartition("/")
    yield f"{base}/{name}"
    admin = await asyncpg.connect(_pg_admin_dsn(PG_URL))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def sink() -> AsyncIterator[Any]:
    from tests.helpers import Sink

    server = Sink()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def make_settings(db_url: str) -> Callable[..., Any]:
    from tests.helpers import test_settings

    def make(**sections: dict[str, Any]) -> Any:
        return test_settings(db_url, **sections)

    return make


def shared_path(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared material not found: {path}")
    return path
