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
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from relay.db import write_tx
from relay.store import archive, dbthread, queue
from relay.store.archive import Record
from relay.store.counters import Charge
from relay.store.tables import archive as archive_table
from relay.store.tables import message_ids, utcnow

if TYPE_CHECKING:
    import sqlite3

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
        Message-IDs and exemptions: a few multi-row statements however many entries,
        and on SQLite all of them in one call to the database thread (relay.store.dbthread:
        the group commit holds the chain lock while this runs)."""
        if not entries:
            return []
        now = utcnow()
        if self.conn.dialect.name == "sqlite":
            write = partial(_append_sqlite, entries, self._prev, now, self.conn.dialect)
            ids, self._prev = await dbthread.run(self.conn, write)
            return ids
        if self._prev is None:
            self._prev = await _last_hash(self.conn)
        ids, self._prev = await _insert(self.conn, [e.record for e in entries], self._prev)
        queued, mapped, exempt = _implied(ids, entries, now)
        await queue.enqueue(self.conn, queued, now=now)
        await map_message_ids(self.conn, mapped)
        if exempt:
            from relay.store.reports import response_exemptions

            await self.conn.execute(response_exemptions.insert(), exempt)
        return ids


def _implied(
    ids: Sequence[int], entries: Sequence[Entry], now: datetime
) -> tuple[list[queue.NewDelivery], list[dict[str, Any]], list[dict[str, Any]]]:
    """What committing the records implies: their delivery rows, Message-ID mappings
    and "no reply needed" exemptions."""
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
    return queued, mapped, _exempt_rows(ids, entries)


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


def _chained(records: Sequence[Record], prev_hash: str) -> tuple[list[dict[str, Any]], str]:
    """The archive rows of ``records``, each chained onto the one before it."""
    rows = []
    for record in records:
        # ``reason_code`` is the code its producer named (relay.core.outcomes.ReasonCode),
        # written as given: nothing here reads the reason text to find one.
        row = record.row()
        digest = archive.chain_hash(prev_hash, row)
        rows.append({**row, "prev_hash": prev_hash, "hash": digest})
        prev_hash = digest
    return rows, prev_hash


async def _insert(
    conn: AsyncConnection, records: list[Record], prev_hash: str
) -> tuple[list[int], str]:
    """Insert records in chain order, and their search text (relay.store.search).

    One multi-row INSERT for the lot (ids come back in parameter order): the group
    commit holds the chain lock while this runs, so round trips here are paid by every
    waiting session.
    """
    from relay.store.search import index_many

    rows, prev_hash = _chained(records, prev_hash)
    result = await conn.execute(
        archive_table.insert().returning(archive_table.c.id, sort_by_parameter_order=True), rows
    )
    ids = [int(r[0]) for r in result]
    await index_many(conn, ids, records)
    return ids, prev_hash


_LAST_HASH = "SELECT hash FROM archive ORDER BY id DESC LIMIT 1"


def _append_sqlite(
    entries: Sequence[Entry], prev: str | None, now: datetime, dialect: Dialect,
    db: sqlite3.Connection,
) -> tuple[list[int], str]:  # fmt: skip
    """``Ledger.append``'s statements on SQLite, run in the database thread in the
    ledger's transaction (under BEGIN IMMEDIATE, so the last hash read here is the last):
    the same rows, through the same column types, as the path above."""
    from relay.store import search
    from relay.store.reports import response_exemptions

    if prev is None:
        last = db.execute(_LAST_HASH).fetchone()
        prev = str(last[0]) if last else archive.GENESIS
    records = [e.record for e in entries]
    rows, prev = _chained(records, prev)
    insert = dbthread.rows_insert(archive_table, rows, dialect)
    ids = [insert.one(db, row) for row in rows]  # rowids in chain order
    # The search text as search.index_many writes it on SQLite (its statement, its rows).
    texts = [search.text_row(i, r.subject, r.original, r.extra.get("search") if r.extra else None)
             for i, r in zip(ids, records, strict=True)]  # fmt: skip
    db.executemany(search._SQLITE_INSERT, [tuple(t[c] for c in search._COLUMNS) for t in texts])
    queued, mapped, exempt = _implied(ids, entries, now)
    queue.enqueue_sqlite(db, queued, now=now, dialect=dialect)
    if mapped:
        dbthread.rows_insert(message_ids, mapped, dialect).many(db, mapped)
    if exempt:
        dbthread.rows_insert(response_exemptions, exempt, dialect).many(db, exempt)
    return ids, prev


def _exempt_rows(ids: Sequence[int], entries: Sequence[Entry]) -> list[dict[str, Any]]:
    """Exemptions from the response report for the buyer messages that said they need no
    reply, written in the transaction that archives them (relay.ratelimits.wants_no_reply)."""
    from relay.ratelimits import NO_REPLY_HEADER

    return [
        {"archive_id": i, "order_id": e.record.order_id or "", "created_at": e.record.created_at,
         "reason": f"{NO_REPLY_HEADER} header", "created_by": "buyer"}
        for i, e in zip(ids, entries, strict=True)
        if e.no_reply_needed and e.outgoing is not None
    ]  # fmt: skip
