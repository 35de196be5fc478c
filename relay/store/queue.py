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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from relay.db import read_tx, write_tx
from relay.store.tables import archive, deliveries, delivery_events, utcnow

log = structlog.get_logger("relay.delivery")
DUE_STATES = ("queued", "deferred")


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
        deliveries.c.status == "sending",
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
        stale = sa.and_(deliveries.c.status == "sending", deliveries.c.claimed_until < now)
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
                deliveries.update()
                .where(deliveries.c.id.in_(accepted))
                .values(
                    status="delivered",
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
            deliveries.update()
            .where(deliveries.c.id.in_([r.id for r in rows]))
            .values(status="sending", claimed_by=worker, claimed_until=now + lease, updated_at=now)
        )
    return [
        Claimed(**{k: v for k, v in r._mapping.items() if k != "status"}, claimed_by=worker)
        for r in rows
    ]


async def _accepted(conn: AsyncConnection, rows: Sequence[Any]) -> set[int]:
    """The rows among ``rows`` whose recipient already answered 250: a worker recorded
    it after losing its claim (its lease ran out), so sending again would duplicate it.
    Only a row tried before can have such an event (fresh rows, the usual claim, cost
    nothing); one query for the rest, through the archive_id index."""
    rows = [r for r in rows if r.status == "sending" or r.attempts > 0]
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
                deliveries.c.status == "sending",
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


@dataclass(frozen=True)
class Attempt:
    """The outcome of one attempt, to be recorded."""

    item: Claimed
    status: str  # delivered|deferred
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
    """Record one attempt (see ``record_many``)."""
    attempt = Attempt(item, status, event, code, detail, next_attempt_at)
    return (await record_many(engine, [attempt]))[0]


async def record_many(engine: AsyncEngine, attempts: list[Attempt]) -> list[bool]:
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
    now = utcnow()
    changed = []
    events = []
    async with write_tx(engine) as conn:
        for a in attempts:
            result = await conn.execute(
                deliveries.update()
                .where(held_by(a.item))
                .values(
                    status=a.status,
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
            events.append(
                {
                    "delivery_id": a.item.id,
                    "archive_id": a.item.archive_id,
                    "at": now,
                    "event": a.event,
                    "code": a.code,
                    "detail": text(a.detail),
                }
            )
        if events:
            await conn.execute(delivery_events.insert(), events)
    return changed


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
