"""The delivery state machine (relay.store.queue) against its table (relay.core.outcomes):
every state change is refused by the UPDATE itself when the table does not allow it, on
SQLite and PostgreSQL, whoever asks."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from relay.clock import utcnow
from relay.core.outcomes import TRANSITIONS, DeliveryStatus, may_move, sources
from relay.db import create_engine, read_tx
from relay.db.migrate import upgrade
from relay.store import ledger, queue
from relay.store.archive import Record
from relay.store.commit import Entry, Outgoing, commit_now
from relay.store.tables import deliveries

S = DeliveryStatus


def test_the_table_is_closed_and_failed_is_final() -> None:
    assert set(TRANSITIONS) == set(DeliveryStatus)
    assert TRANSITIONS[S.FAILED] == frozenset()
    assert not may_move(S.DELIVERED, S.QUEUED)
    assert may_move(S.DELIVERED, S.FAILED)  # a DSN after the recipient's 250
    assert sources(S.SENDING) == {S.QUEUED, S.DEFERRED, S.SENDING}
    assert S.QUEUED == "queued"  # the stored text: no data migration


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[Any]:
    eng = create_engine(db_url)
    await upgrade(eng)
    yield eng
    await eng.dispose()


async def _queued(engine: Any) -> int:
    raw = b"Subject: x\r\n\r\nhello\r\n"
    record = Record(created_at=utcnow(), verdict="deliver", original=raw,
                    sha256=hashlib.sha256(raw).hexdigest(), delivered=raw)  # fmt: skip
    await commit_now(engine, [Entry(record, Outgoing("", "a@example.net", "tok1"))])
    async with read_tx(engine) as conn:
        return int((await conn.execute(sa.select(deliveries.c.id))).scalar_one())


async def _status(engine: Any, delivery_id: int) -> str:
    async with read_tx(engine) as conn:
        q = sa.select(deliveries.c.status).where(deliveries.c.id == delivery_id)
        return str((await conn.execute(q)).scalar_one())


async def test_a_failed_row_stays_failed(engine: Any) -> None:
    lease = timedelta(minutes=1)
    did = await _queued(engine)
    (item,) = await queue.claim(engine, "w1", limit=5, lease=lease)
    assert await _status(engine, did) == S.SENDING
    assert await queue.fail(engine, item, event="failed", code=550, detail="no") is False
    assert await _status(engine, did) == S.FAILED
    # A late "delivered" from the same claim cannot revive it, nor can a claim.
    assert await queue.record(engine, item, status="delivered", event="delivered",
                              code=250, detail="ok") is False  # fmt: skip
    assert await queue.claim(engine, "w2", limit=5, lease=lease) == []
    assert await _status(engine, did) == S.FAILED
    with pytest.raises(ValueError):
        await queue.settle(engine, [queue.Attempt(item, "failed", "failed", 550, "no")])


async def test_a_dsn_fails_a_delivered_row_once(engine: Any) -> None:
    did = await _queued(engine)
    (item,) = await queue.claim(engine, "w1", limit=5, lease=timedelta(minutes=1))
    assert await queue.record(engine, item, status="delivered", event="delivered",
                              code=250, detail="ok") is True  # fmt: skip
    for expected in (1, 0):  # the second report finds it failed already: no second notice
        async with ledger.open(engine) as book:
            rows = await queue.reported(book, ["tok1"])
            moved = await queue.settle_by_dsn(book, rows, event="bounced",
                                              detail="DSN failed 5.1.1", failed=True)  # fmt: skip
        assert len(moved) == expected
    assert await _status(engine, did) == S.FAILED
