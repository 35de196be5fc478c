"""The delivery queue: claim due rows, record each attempt's outcome.

Claims are leases: a row being sent carries ``claimed_until``, which its live worker
renews while the send lasts; if the worker dies the lease runs out and another worker
takes the row. That is the one window in which a message can be delivered twice (sent,
then the worker dies before recording it), the same trade Postfix makes: a duplicate
rather than a loss. Only the holder of a claim may change the row's state (``held_by``),
so a late result never overwrites a DSN's verdict or another worker's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from relay.db import read_tx, write_tx
from relay.db.schema import archive, deliveries, delivery_events, utcnow

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


async def claim(engine: AsyncEngine, worker: str, *, limit: int, lease: timedelta) -> list[Claimed]:
    now = utcnow()
    due = sa.or_(
        sa.and_(deliveries.c.status.in_(DUE_STATES), deliveries.c.next_attempt_at <= now),
        sa.and_(deliveries.c.status == "sending", deliveries.c.claimed_until < now),
    )
    query = (
        sa.select(
            deliveries.c.id,
            deliveries.c.archive_id,
            deliveries.c.mail_from,
            deliveries.c.rcpt,
            deliveries.c.attempts,
            deliveries.c.created_at,
            deliveries.c.notify,
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
        await conn.execute(
            deliveries.update()
            .where(deliveries.c.id.in_([r.id for r in rows]))
            .values(status="sending", claimed_by=worker, claimed_until=now + lease, updated_at=now)
        )
    return [Claimed(**r._mapping, claimed_by=worker) for r in rows]


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
    each outcome alone would slow the SMTP side's commits down to its own pace."""
    if not attempts:
        return []
    now = utcnow()
    changed = []
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
                    last_error=a.detail[:1000],
                    updated_at=now,
                )
            )
            changed.append(bool(result.rowcount))
        await conn.execute(
            delivery_events.insert(),
            [
                {
                    "delivery_id": a.item.id,
                    "archive_id": a.item.archive_id,
                    "at": now,
                    "event": a.event,
                    "code": a.code,
                    "detail": a.detail[:1000],
                }
                for a in attempts
            ],
        )
    return changed
