"""Red team: our own faults answer 4xx, never 5xx, and lose nothing (issue 10).

- PostgreSQL refusing connections (``ALLOW_CONNECTIONS false`` and every backend of the
  test's database terminated: what the relay sees of an outage) at RCPT and at the end
  of DATA: ``451 4.3.0``; once it is back, the same message is accepted and delivered.
- SQLite on a full filesystem (a 4 MB tmpfs, root only): ``452 4.3.1`` or ``451 4.3.0``
  at the end of DATA, and the relay takes mail again once space returns, without a
  restart.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PG_URL, _pg_admin_dsn
from tests.core.test_slow_clients import Conn, relay_with_order
from tests.helpers import BUYER, message
from tests.helpers import test_settings as settings_at


async def _session_to_data(port: int, alias: str) -> tuple[Conn, list[str]]:
    conn = await Conn.open(port, "127.0.0.3")
    said = [conn.banner]
    for line in ("EHLO faults.test", f"MAIL FROM:<{BUYER}>", f"RCPT TO:<{alias}>"):
        said.append(await conn.cmd(line))
    return conn, said


async def _whole(port: int, alias: str, subject: str) -> list[str]:
    conn, said = await _session_to_data(port, alias)
    try:
        if said[-1].startswith("250"):
            said.append(await conn.cmd("DATA"))
            data = message(BUYER, alias, subject=subject).as_bytes()
            conn.writer.write(data + b"\r\n.\r\n")
            said.append(await conn.reply(60))
        return said
    finally:
        conn.close()


def _no_5xx(replies: list[str]) -> None:
    bad = [r for r in replies if r[:1] == "5"]
    assert not bad, bad


@pytest.fixture
async def pg_database() -> Any:
    if not PG_URL:
        pytest.skip("needs RELAY_TEST_DATABASE_URL")
    import secrets

    import asyncpg

    name = f"relay_f_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(_pg_admin_dsn(PG_URL))
    await admin.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = PG_URL.rpartition("/")

    async def outage(down: bool) -> None:
        await admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS {not down!s}')
        if down:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                name,
            )

    try:
        yield f"{base}/{name}", outage
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_database_outage_at_rcpt_and_at_commit_answers_451(pg_database: Any) -> None:
    url, outage = pg_database
    settings = settings_at(url)
    async with relay_with_order(settings) as (relay, alias):
        seen: list[str] = []
        seen += await _whole(relay.port, alias, "before")
        assert seen[-1].startswith("250 2.0.0"), seen
        # down before RCPT
        await outage(True)
        said = await _whole(relay.port, alias, "at rcpt")
        seen += said
        assert said[-1].startswith("451 4.3.0"), said
        await outage(False)
        # down between RCPT and the end of DATA: the commit fails
        conn, said = await _session_to_data(relay.port, alias)
        assert said[-1].startswith("250"), said
        said.append(await conn.cmd("DATA"))
        await outage(True)
        conn.writer.write(message(BUYER, alias, subject="at commit").as_bytes() + b"\r\n.\r\n")
        said.append(await conn.reply(60))
        conn.close()
        seen += said
        assert said[-1][:1] == "4", said
        await outage(False)
        # back: the sender's retry is taken
        said = await _whole(relay.port, alias, "after")
        seen += said
        assert said[-1].startswith("250 2.0.0"), said
    _no_5xx(seen)


# --- disk full ------------------------------------------------------------------------


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    path.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(path: Path) -> Path:
    """Fill the filesystem of ``path`` up to the last byte."""
    filler = path / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (65536, 512):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)
    return filler


async def test_disk_full_answers_4xx_and_recovers(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "fs", "8m") as fs:
        settings = settings_at(f"sqlite+aiosqlite:///{fs}/relay.sqlite3")
        async with relay_with_order(settings) as (relay, alias):
            seen = await _whole(relay.port, alias, "before")
            assert seen[-1].startswith("250 2.0.0"), seen
            filler = fill(fs)
            said: list[str] = []
            for n in range(3):
                said += await _whole(relay.port, alias, f"full {n}")
            seen += said
            finals = [r for r in said if r[:1] in "245" and not r.startswith(("220", "354"))]
            assert any(r.startswith(("452 4.3.1", "451 4.3.0")) for r in finals), said
            filler.unlink()
            said = await _whole(relay.port, alias, "after")
            seen += said
            assert said[-1].startswith("250 2.0.0"), said
        _no_5xx(seen)
