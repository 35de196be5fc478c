"""relay.store.dbthread: the ledger's appends and the RCPT lookup on SQLite run as one
function in aiosqlite's thread, and write and read exactly what the SQLAlchemy path does.

The aiosqlite internals it uses are pinned here; the equivalence tests compare, byte for
byte, the rows the one-hand-off path stores with those the ordinary statements store for
the same entries (the ordinary path is PostgreSQL's, and SQLite's before this module).
"""

from __future__ import annotations

import hashlib
import inspect
import sqlite3
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
import sqlalchemy as sa

from relay.db import create_engine, write_tx
from relay.db.migrate import upgrade
from relay.store import ledger, queue, resolve
from relay.store.archive import Record
from relay.store.commit import Entry, Outgoing, commit_now
from relay.store.orders import create_order
from relay.store.reports import response_exemptions

NOW = datetime(2026, 12, 2, 2, 30, 0, 123456, tzinfo=UTC)
TABLES = ("archive", "archive_text", "deliveries", "message_ids", "response_exemptions")


def test_the_aiosqlite_internals_it_uses_are_there() -> None:
    assert inspect.iscoroutinefunction(aiosqlite.Connection._execute)
    assert isinstance(inspect.getattr_static(aiosqlite.Connection, "_conn"), property)


def _entries(order_id: str, group: int = 0) -> list[Entry]:
    out = []
    for n in range(3 * group, 3 * group + 3):
        raw = f"From: b@x.example\r\nSubject: s{n}\r\n\r\nhello {n} \u00e9\r\n".encode()
        record = Record(
            created_at=NOW, verdict="deliver", original=raw, delivered=raw,
            sha256=hashlib.sha256(raw).hexdigest(), order_id=order_id, subject=f"s{n}",
            direction="buyer-to-seller", relay_message_id=f"r{n}@relay.example",
            size=len(raw), truncated=bool(n % 2), reason_code="none",
        )  # fmt: skip
        outgoing = Outgoing("", f"seller{n}@shop.example", f"tok{n}", notify=n != 1,
                            author="buyer", original_message_id=f"<o{n}@x.example>")  # fmt: skip
        out.append(Entry(record, None if n % 3 == 2 else outgoing, no_reply_needed=n % 3 == 0))
    return out


async def _ordinary_append(conn: Any, entries: Sequence[Entry]) -> list[int]:
    """Ledger.append's statement-by-statement path (PostgreSQL's), run on SQLite."""
    prev = await ledger._last_hash(conn)
    ids, _ = await ledger._insert(conn, [e.record for e in entries], prev)
    queued, mapped, exempt = ledger._implied(ids, entries, NOW)
    await queue.enqueue(conn, queued, now=NOW)
    await ledger.map_message_ids(conn, mapped)
    await conn.execute(response_exemptions.insert(), exempt)
    return ids


async def _database(path: Path) -> Any:
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    await upgrade(engine)
    order = await create_order(engine, "relay.example", "900-0000000-0000001",
                               buyer="b@x.example", seller="s@shop.example")  # fmt: skip
    return engine, order.id


def _dump(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    with sqlite3.connect(path) as db:
        return {
            t: [
                tuple((type(v).__name__, v) for v in r)
                for r in db.execute(f"SELECT * FROM {t} ORDER BY 1")
            ]
            for t in TABLES
        }


async def test_one_hand_off_stores_what_the_statements_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ledger, "utcnow", lambda: NOW)
    fast, ordinary = tmp_path / "fast.sqlite3", tmp_path / "ordinary.sqlite3"
    for path in (fast, ordinary):
        engine, order_id = await _database(path)
        try:
            for group in range(2):  # two groups: the second chains onto the first
                if path is fast:
                    ids = await commit_now(engine, _entries(order_id, group))
                else:
                    async with ledger.open(engine) as book:
                        ids = await _ordinary_append(book.conn, _entries(order_id, group))
                assert len(ids) == 3
        finally:
            await engine.dispose()
    rows = _dump(fast)
    assert rows == _dump(ordinary)
    assert len(rows["archive"]) == 6 and len(rows["deliveries"]) == 4
    assert len(rows["archive_text"]) == 6 and len(rows["response_exemptions"]) == 2


async def test_a_failed_append_leaves_nothing_and_raises_sqlalchemys_error(
    tmp_path: Path,
) -> None:
    engine, order_id = await _database(tmp_path / "r.sqlite3")
    try:
        await commit_now(engine, _entries(order_id)[:1])
        with pytest.raises(sa.exc.IntegrityError):  # the same minted Message-ID again
            async with ledger.open(engine) as book:
                await book.append(_entries(order_id)[:1])
        async with write_tx(engine) as conn:
            count = (await conn.execute(sa.text("SELECT count(*) FROM archive"))).scalar()
        assert count == 1
    finally:
        await engine.dispose()


@pytest.fixture
async def counted(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[list[str]]:
    """The names of the functions handed to aiosqlite's thread."""
    calls: list[str] = []
    real = aiosqlite.Connection._execute

    async def spy(self: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(getattr(fn, "__name__", type(fn).__name__))
        return await real(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", spy)
    yield calls


async def test_rcpt_and_append_cross_to_the_thread_a_few_times(
    tmp_path: Path, counted: list[str]
) -> None:
    engine, order_id = await _database(tmp_path / "r.sqlite3")
    try:
        async with engine.connect() as conn:  # the pool's connection, made outside the count
            await conn.execute(sa.text("SELECT 1"))
        seller_alias = sa.text("SELECT local_part FROM aliases WHERE stands_for = 'seller'")
        async with write_tx(engine) as conn:
            alias = (await conn.execute(seller_alias)).scalar()
        counted.clear()
        found = await resolve.resolve_alias(engine, "relay.example", f"{alias}@relay.example")
        assert isinstance(found, resolve.Resolution) and found.order_id == order_id
        rcpt = len(counted)
        async with ledger.open(engine) as book:
            counted.clear()
            await book.append(_entries(order_id))
            in_append = len(counted)
    finally:
        await engine.dispose()
    assert rcpt <= 2, counted  # the SELECT (and the pool's reset)
    assert in_append == 1  # every statement of the append in one call


async def test_a_change_takes_effect_at_the_next_rcpt(tmp_path: Path) -> None:
    """No cache: a sender authorised, or an order closed, from any connection, is what
    the very next lookup sees (one statement, its own snapshot)."""
    from relay.core import replies
    from relay.store.orders import add_sender, get_order, set_status

    engine, order_id = await _database(tmp_path / "r.sqlite3")
    try:
        alias = (await get_order(engine, "relay.example", order_id)).seller_alias
        found = await resolve.resolve_alias(engine, "relay.example", alias)
        assert isinstance(found, resolve.Resolution)
        assert found.sender_emails == {"b@x.example"} and found.stands_for == "seller"
        assert found.recipient_email == "s@shop.example" and found.delivered_at is None
        await add_sender(engine, "b@x.example", "orders@x.example")
        found = await resolve.resolve_alias(engine, "relay.example", alias.upper())
        assert isinstance(found, resolve.Resolution)
        assert found.sender_emails == {"b@x.example", "orders@x.example"}
        await set_status(engine, "relay.example", order_id, "closed")
        gone = await resolve.resolve_alias(engine, "relay.example", alias)
        assert gone is replies.NO_SUCH_ALIAS
    finally:
        await engine.dispose()
