"""The delivery queue: claim due rows, record each attempt's outcome.

Claims are leases: a row being sent carries ``claimed_until``, which its live worker
renews while the send lasts; if the worker dies the lease runs out and another worker
takes the row. That is the one window in which a message can be delivered twice (sent,
then the worker dies before recording it), the same trade Postfix makes: a duplicate
rather than a loss. Only the holder of a claim may change the row's state (``held_by``),
so a late result never overwrites a DSN's verdict or another worker's.

A lease that ran out while the database was down says nothing about its holder: it could
not renew. So an expired lease is taken over only once the database has been up for a
whole lease (``pg_postmaster_start_time``; the worker adds what it saw itself), time in
which a live holder renews it. And a row whose recipient already answered 250 (a
``delivered`` event, written even when the claim was lost) is marked delivered by the
claim instead of being handed out to be sent again.

This module is the delivery state machine and the only writer of ``deliveries`` and
``delivery_events``: ``enqueue`` (a new row, ``queued``), ``claim``, ``renew``, ``settle``
(a worker's delivered/deferred outcomes), ``fail`` (a permanent failure with its bounce
notice, in one transaction through relay.store.ledger) and ``settle_by_dsn`` (an inbound
report). Every state change goes through ``_move``, whose WHERE admits only the states
that relay.core.outcomes.TRANSITIONS allows into the target state, so the table is
checked by the database on every UPDATE, race or not.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from relay.core.outcomes import INITIAL, DeliveryStatus, may_move, sources
from relay.db import inserted_id, read_tx, write_tx
from relay.store import dbthread, ledger
from relay.store.tables import archive, deliveries, delivery_events, utcnow

if TYPE_CHECKING:
    import sqlite3

log = structlog.get_logger("relay.delivery")
S = DeliveryStatus
DUE_STATES = tuple(s for s in DeliveryStatus if s.due_state)


def _move(target: DeliveryStatus, *where: sa.ColumnElement[bool], **values: Any) -> sa.Update:
    """The UPDATE of a state change to ``target``: only rows in a state the transition
    table lets into ``target`` are touched, whatever else the caller's WHERE says."""
    return (
        deliveries.update()
        .where(*where, deliveries.c.status.in_(sorted(str(s) for s in sources(target))))
        .values(status=str(target), **values)
    )


@dataclass(frozen=True)
class NewDelivery:
    """A delivery row to create with its archive record (relay.store.ledger)."""

    archive_id: int
    token: str  # for the signed return path
    mail_from: str
    rcpt: str
    notify: bool = True


async def enqueue(
    conn: AsyncConnection, items: Sequence[NewDelivery], *, now: datetime | None = None
) -> None:
    """Create delivery rows in the first state, in the caller's transaction (one
    multi-row INSERT however many: the group commit waits on it)."""
    if items:
        await conn.execute(deliveries.insert(), [_new_row(i, now or utcnow()) for i in items])


def enqueue_sqlite(
    db: sqlite3.Connection, items: Sequence[NewDelivery], *, now: datetime, dialect: Dialect
) -> None:
    """``enqueue`` inside the ledger's one call to SQLite's database thread
    (relay.store.dbthread): the same rows, written through the same column types."""
    if items:
        rows = [_new_row(i, now) for i in items]
        dbthread.rows_insert(deliveries, rows, dialect).many(db, rows)


async def enqueue_one(conn: AsyncConnection, item: NewDelivery, *, now: datetime) -> int:
    """``enqueue`` for one row whose id the caller records (a released hold)."""
    return inserted_id(await conn.execute(deliveries.insert().values(_new_row(item, now))))


def _new_row(i: NewDelivery, now: datetime) -> dict[str, Any]:
    return {"archive_id": i.archive_id, "token": i.token, "mail_from": i.mail_from,
            "rcpt": i.rcpt, "status": str(INITIAL), "attempts": 0, "next_attempt_at": now,
            "notify": i.notify, "created_at": now, "updated_at": now}  # fmt: skip


@dataclass(frozen=True)
class Claimed:
    id: int
    archive_id: int
    mail_from: str
    rcpt: str
    attempts: int
    created_at: datetime
    notify: bool
    claimed_by: str = ""


def held_by(item: Claimed) -> sa.ColumnElement[bool]:
    """The row is still ours: nobody took it over after our lease ran out, and no DSN
    marked it failed while we were sending. Only the holder may change its state."""
    return sa.and_(
        deliveries.c.id == item.id,
        deliveries.c.status == S.SENDING,
        deliveries.c.claimed_by == item.claimed_by,
    )


async def claim(
    engine: AsyncEngine,
    worker: str,
    *,
    limit: int,
    lease: timedelta,
    takeover: bool = True,
) -> list[Claimed]:
    """Lease up to ``limit`` due rows to ``worker``. Rows whose lease ran out are taken
    over only if ``takeover`` (the caller has seen the database up for a lease) and the
    database server itself has been up that long."""
    now = utcnow()
    due = sa.and_(deliveries.c.status.in_(DUE_STATES), deliveries.c.next_attempt_at <= now)
    if takeover:
        stale = sa.and_(deliveries.c.status == S.SENDING, deliveries.c.claimed_until < now)
        if engine.dialect.name == "postgresql":
            up_since = sa.bindparam("up_since", now - lease, type_=sa.DateTime(timezone=True))
            stale = sa.and_(stale, sa.func.pg_postmaster_start_time() < up_since)
        due = sa.or_(due, stale)
    query = (
        sa.select(
            deliveries.c.id,
            deliveries.c.archive_id,
            deliveries.c.mail_from,
            deliveries.c.rcpt,
            deliveries.c.attempts,
            deliveries.c.created_at,
            deliveries.c.notify,
            deliveries.c.status,
        )
        .where(due)
        .order_by(deliveries.c.next_attempt_at)
        .limit(limit)
    )
    async with write_tx(engine) as conn:
        if conn.dialect.name != "sqlite":
            query = query.with_for_update(skip_locked=True)
        rows = (await conn.execute(query)).all()
        if not rows:
            return []
        accepted = await _accepted(conn, rows)
        if accepted:
            await conn.execute(
                _move(
                    S.DELIVERED,
                    deliveries.c.id.in_(accepted),
                    attempts=deliveries.c.attempts + 1,
                    claimed_by="",
                    claimed_until=None,
                    updated_at=now,
                )
            )
            log.warning("delivery.already_accepted", deliveries=sorted(accepted))
        rows = [r for r in rows if r.id not in accepted]
        if not rows:
            return []
        await conn.execute(
            _move(
                S.SENDING,
                deliveries.c.id.in_([r.id for r in rows]),
                claimed_by=worker, claimed_until=now + lease, updated_at=now,
            )
        )  # fmt: skip
    return [
        Claimed(**{k: v for k, v in r._mapping.items() if k != "status"}, claimed_by=worker)
        for r in rows
    ]


async def _accepted(conn: AsyncConnection, rows: Sequence[Any]) -> set[int]:
    """The rows among ``rows`` whose recipient already answered 250: a worker recorded
    it after losing its claim (its lease ran out), so sending again would duplicate it.
    Only a row tried before can have such an event (fresh rows, the usual claim, cost
    nothing); one query for the rest, through the archive_id index."""
    rows = [r for r in rows if r.status == S.SENDING or r.attempts > 0]
    if not rows:
        return set()
    e = delivery_events.c
    found = await conn.execute(
        sa.select(e.delivery_id)
        .where(
            e.archive_id.in_({r.archive_id for r in rows}),
            e.delivery_id.in_([r.id for r in rows]),
            e.event == "delivered",
        )
        .distinct()
    )
    return set(found.scalars().all())


async def renew(engine: AsyncEngine, worker: str, ids: list[int], lease: timedelta) -> int:
    """Extend the leases of rows a live worker is still sending; returns how many.

    Renewal is what lets the lease be short (a crashed worker's rows come back soon)
    without a slow but healthy send being taken over and delivered twice.
    """
    if not ids:
        return 0
    now = utcnow()
    async with write_tx(engine) as conn:
        result = await conn.execute(
            deliveries.update()
            .where(
                deliveries.c.id.in_(ids),
                deliveries.c.status == S.SENDING,
                deliveries.c.claimed_by == worker,
            )
            .values(claimed_until=now + lease)
        )
    return int(result.rowcount)


async def message_bytes(engine: AsyncEngine, archive_id: int) -> bytes:
    async with read_tx(engine) as conn:
        row = (
            await conn.execute(sa.select(archive.c.delivered).where(archive.c.id == archive_id))
        ).first()
    if row is None or row.delivered is None:
        raise LookupError(f"archive record {archive_id} has no delivered copy")
    return bytes(row.delivered)


async def messages_bytes(engine: AsyncEngine, archive_ids: Sequence[int]) -> dict[int, bytes]:
    """Several messages' delivered copies in one round trip (the worker's loader); an id
    without a copy is left out."""
    async with read_tx(engine) as conn:
        rows = await conn.execute(
            sa.select(archive.c.id, archive.c.delivered).where(archive.c.id.in_(archive_ids))
        )
        return {int(r.id): bytes(r.delivered) for r in rows if r.delivered is not None}


@dataclass(frozen=True)
class Attempt:
    """The outcome of one attempt, to be recorded."""

    item: Claimed
    status: str  # delivered|deferred (a failure goes through ``fail``)
    event: str
    code: int | None
    detail: str
    next_attempt_at: datetime | None = None
    at: datetime | None = None  # when the outcome happened, for one recorded late


async def record(
    engine: AsyncEngine,
    item: Claimed,
    *,
    status: str,
    event: str,
    code: int | None,
    detail: str,
    next_attempt_at: datetime | None = None,
) -> bool:
    """Record one attempt (see ``settle``)."""
    attempt = Attempt(item, status, event, code, detail, next_attempt_at)
    return (await settle(engine, [attempt]))[0]


async def settle(engine: AsyncEngine, attempts: list[Attempt]) -> list[bool]:
    """Append the attempts to the permanent event log and set each row's new state if
    the row is still ours (see ``held_by``), all in one transaction: on SQLite every
    write transaction holds the one write lock through an fsync, so a worker that wrote
    each outcome alone would slow the SMTP side's commits down to its own pace.

    The event is written even when the claim was lost: a later claim must see that the
    recipient accepted the message. An outcome recorded late (``at`` set: kept through a
    database outage, maybe already written by a commit whose reply was lost) gets no
    second event when the row is no longer ours and its event is already there."""
    if not attempts:
        return []
    for a in attempts:
        if not may_move(S.SENDING, a.status) or a.status == S.FAILED:
            raise ValueError(f"settle cannot move a delivery to {a.status!r}")
    now = utcnow()
    changed = []
    events = []
    async with write_tx(engine) as conn:
        for a in attempts:
            result = await conn.execute(
                _move(
                    S(a.status),
                    held_by(a.item),
                    attempts=a.item.attempts + 1,
                    next_attempt_at=a.next_attempt_at or now,
                    claimed_by="",
                    claimed_until=None,
                    last_code=a.code,
                    last_error=text(a.detail),
                    updated_at=now,
                )
            )
            changed.append(bool(result.rowcount))
            if not result.rowcount and a.at is not None:
                if await has_event(conn, a.item, a.event, since=a.at):
                    continue
            events.append(_event_row(a.item.id, a.item.archive_id, now, a.event, a.code, a.detail))
        await _log_events(conn, events)
    return changed


record_many = settle  # the worker's name for it before the state machine had one home


async def fail(
    engine: AsyncEngine,
    item: Claimed,
    *,
    event: str,
    code: int | None,
    detail: str,
    at: datetime | None = None,
    notice: ledger.Entry | None = None,
) -> bool:
    """Mark the row failed and append the sender's ``notice`` in the same transaction:
    never one without the other. True when the notice was written.

    With a notice the transaction is the ledger's (chain lock first, then the row), the
    order ``settle_by_dsn`` uses too, so a worker and a DSN about the same row cannot
    deadlock on PostgreSQL. The event is written even when the claim was lost (once, if
    recorded late); the notice only if this worker still held the row: otherwise a DSN
    or another worker already decided, and told the sender."""
    now = utcnow()
    async with _transaction(engine, chained=notice is not None) as (conn, book):
        result = await conn.execute(
            _move(
                S.FAILED,
                held_by(item),
                attempts=item.attempts + 1,
                claimed_by="",
                claimed_until=None,
                last_code=code,
                last_error=text(detail),
                updated_at=now,
            )
        )
        if result.rowcount or at is None or not await has_event(conn, item, event, since=at):
            row = _event_row(item.id, item.archive_id, now, event, code, detail)
            await _log_events(conn, [row])
        if not result.rowcount or notice is None or book is None:
            return False
        await book.append([notice])
    return True


@asynccontextmanager
async def _transaction(
    engine: AsyncEngine, *, chained: bool
) -> AsyncIterator[tuple[AsyncConnection, ledger.Ledger | None]]:
    """The ledger's transaction when something is appended to the archive, else a plain
    write transaction (a failure nobody is told about needs no chain lock)."""
    if chained:
        async with ledger.open(engine) as book:
            yield book.conn, book
    else:
        async with write_tx(engine) as conn:
            yield conn, None


@dataclass(frozen=True)
class Reported:
    """A delivery an inbound DSN names, with what its notice needs."""

    id: int
    archive_id: int
    status: str
    notify: bool
    mail_from: str
    order_id: str | None
    alias: str


async def known_token(engine: AsyncEngine, token: str) -> bool:
    """Whether a delivery row carries ``token`` (a return path we minted, still ours)."""
    async with read_tx(engine) as conn:
        q = sa.select(deliveries.c.id).where(deliveries.c.token == token)
        return (await conn.execute(q)).first() is not None


async def reported(book: ledger.Ledger, tokens: Sequence[str]) -> list[Reported]:
    """The deliveries a DSN names, read inside the ledger's transaction (after the chain
    lock): two reports about one delivery are then serialised, and only the first that
    fails it sends a notice."""
    d, a = deliveries.c, archive.c
    rows = await book.conn.execute(
        sa.select(d.id, d.archive_id, d.status, d.notify, d.mail_from, a.order_id, a.alias)
        .join(archive, a.id == d.archive_id)
        .where(d.token.in_(tokens))
    )
    return [Reported(**r._mapping) for r in rows]


async def settle_by_dsn(
    book: ledger.Ledger, rows: Sequence[Reported], *, event: str, detail: str, failed: bool
) -> list[Reported]:
    """Record a DSN's report against each row; when it reports failure, mark the rows
    failed. Returns the rows this report failed (the caller tells their senders): a row a
    worker or an earlier report already failed is left alone, its sender already told."""
    now = utcnow()
    await _log_events(
        book.conn, [_event_row(r.id, r.archive_id, now, event, None, detail) for r in rows]
    )
    moved = []
    for row in rows:
        if not failed or not may_move(row.status, S.FAILED):
            continue
        changed = await book.conn.execute(
            _move(S.FAILED, deliveries.c.id == row.id, last_error=text(detail), updated_at=now)
        )
        if changed.rowcount:
            moved.append(row)
    return moved


def _event_row(
    delivery_id: int, archive_id: int, at: datetime, event: str, code: int | None, detail: str
) -> dict[str, Any]:
    return {"delivery_id": delivery_id, "archive_id": archive_id, "at": at, "event": event[:16],
            "code": code, "detail": text(detail)}  # fmt: skip


async def _log_events(conn: AsyncConnection, events: list[dict[str, Any]]) -> None:
    """Append to ``delivery_events`` (append-only: the database refuses UPDATE/DELETE)."""
    if events:
        await conn.execute(delivery_events.insert(), events)


async def has_event(conn: AsyncConnection, item: Claimed, event: str, *, since: datetime) -> bool:
    """Whether ``event`` was recorded for the row at ``since`` or later (through the
    archive_id index)."""
    e = delivery_events.c
    found = await conn.execute(
        sa.select(e.id)
        .where(
            e.archive_id == item.archive_id,
            e.delivery_id == item.id,
            e.event == event,
            e.at >= since,
        )
        .limit(1)
    )
    return found.first() is not None


def text(detail: str) -> str:
    """A remote reply as stored: PostgreSQL text cannot hold NUL, and an outcome that
    can never be written would be retried forever."""
    return detail.replace("\x00", "")[:1000]
