"""The hash-chained archive's one writer and its one lock.

Every archive record enters through ``Ledger.append`` inside ``ledger.open(engine)``:
the group commit, a failed delivery's notice (relay.store.queue.fail), an inbound DSN
(relay.bounces_in), a refused hold's notice. ``open`` takes the chain lock first thing in
its write transaction, so every transaction that appends holds the lock *before* any row
lock it takes afterwards (a delivery row marked failed, a DSN's rows): one order, kept in
one place, and no deadlock between a worker failing a row and a DSN about that row.

SQLite's ``BEGIN IMMEDIATE`` (relay.db.write_tx) already serialises writers; PostgreSQL
takes a transaction-scoped advisory lock. Inside the lock the ledger reads the last hash
once and chains each appended record onto the one before it (relay.store.archive.chain_hash),
so several ``append`` calls in one transaction form one unbroken chain.

An entry is a record and what its commit implies: the delivery row it queues (through
relay.store.queue.enqueue, the state machine's first state), its Message-ID mapping, and
a buyer's "no reply needed" exemption, all in the same transaction as the record.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from relay.db import write_tx
from relay.store import archive, queue
from relay.store.archive import Record
from relay.store.counters import Charge
from relay.store.tables import archive as archive_table
from relay.store.tables import message_ids, utcnow

CHAIN_LOCK = 0x72656C6179  # "relay": PostgreSQL advisory lock serialising the hash chain


@dataclass(frozen=True)
class Outgoing:
    """The delivery row to queue with a record, and its message-id mapping."""

    mail_from: str
    rcpt: str
    token: str
    notify: bool = True
    author: str = ""
    original_message_id: str = ""


@dataclass(frozen=True)
class Entry:
    record: Record
    outgoing: Outgoing | None = None
    # Rate counters to check and bump under the chain lock (relay.ratelimits.settle).
    charges: tuple[Charge, ...] = ()
    no_reply_needed: bool = False  # a buyer message that needs no answer (relay.store.reports)


class Ledger:
    """A write transaction that holds the chain lock; ``conn`` is for the other writes
    that must commit with the records (store modules only)."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self._prev: str | None = None

    async def append(self, entries: Sequence[Entry]) -> list[int]:
        """Archive the records in chain order, queue their deliveries, map their
        Message-IDs and exemptions: a few multi-row statements however many entries."""
        if not entries:
            return []
        if self._prev is None:
            self._prev = await _last_hash(self.conn)
        ids, self._prev = await _insert(self.conn, [e.record for e in entries], self._prev)
        now = utcnow()
        queued, mapped = [], []
        for record_id, entry in zip(ids, entries, strict=True):
            out = entry.outgoing
            if out is None:
                continue
            queued.append(queue.NewDelivery(record_id, out.token, out.mail_from, out.rcpt,
                                            out.notify))  # fmt: skip
            if out.author and entry.record.relay_message_id:
                mapped.append({
                    "relay_id": entry.record.relay_message_id,
                    "original_id": out.original_message_id,
                    "order_id": entry.record.order_id or "", "author": out.author,
                    "archive_id": record_id, "created_at": now,
                })  # fmt: skip
        await queue.enqueue(self.conn, queued, now=now)
        await map_message_ids(self.conn, mapped)
        await _exempt(self.conn, ids, entries)
        return ids


@asynccontextmanager
async def open(engine: AsyncEngine) -> AsyncIterator[Ledger]:
    """A write transaction holding the chain lock, taken before anything else."""
    async with write_tx(engine) as conn:
        if conn.dialect.name != "sqlite":
            await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(CHAIN_LOCK)))
        yield Ledger(conn)


async def map_message_ids(conn: AsyncConnection, rows: list[dict[str, object]]) -> None:
    """Our minted Message-IDs -> the author's own (threading; relay.store.threads)."""
    if rows:
        await conn.execute(message_ids.insert(), rows)


async def _last_hash(conn: AsyncConnection) -> str:
    row = (
        await conn.execute(
            sa.select(archive_table.c.hash).order_by(archive_table.c.id.desc()).limit(1)
        )
    ).first()
    return row.hash if row else archive.GENESIS


async def _insert(
    conn: AsyncConnection, records: list[Record], prev_hash: str
) -> tuple[list[int], str]:
    """Insert records in chain order, and their search text (relay.store.search).

    One multi-row INSERT for the lot (ids come back in parameter order): the group
    commit holds the chain lock while this runs, so round trips here are paid by every
    waiting session.
    """
    from relay.store.search import index_many

    rows = []
    for record in records:
        # ``reason_code`` is the code its producer named (relay.core.outcomes.ReasonCode),
        # written as given: nothing here reads the reason text to find one.
        row = record.row()
        digest = archive.chain_hash(prev_hash, row)
        rows.append({**row, "prev_hash": prev_hash, "hash": digest})
        prev_hash = digest
    result = await conn.execute(
        archive_table.insert().returning(archive_table.c.id, sort_by_parameter_order=True), rows
    )
    ids = [int(r[0]) for r in result]
    await index_many(conn, ids, records)
    return ids, prev_hash


async def _exempt(conn: AsyncConnection, ids: Sequence[int], entries: Sequence[Entry]) -> None:
    """Exempt from the response report the buyer messages that said they need no reply,
    in the transaction that archives them (relay.ratelimits.wants_no_reply)."""
    from relay.ratelimits import NO_REPLY_HEADER
    from relay.store.reports import response_exemptions

    rows = [
        {"archive_id": i, "order_id": e.record.order_id or "", "created_at": e.record.created_at,
         "reason": f"{NO_REPLY_HEADER} header", "created_by": "buyer"}
        for i, e in zip(ids, entries, strict=True)
        if e.no_reply_needed and e.outgoing is not None
    ]  # fmt: skip
    if rows:
        await conn.execute(response_exemptions.insert(), rows)
