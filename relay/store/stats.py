"""Ops read models: the metrics collector's pages and queue depth, a party's counters.

relay.metrics folds the archive and ``delivery_events`` into running totals by id (rows
are never changed, so a row once counted stays counted); this module is the SQL behind
it, so the collector holds no table. One ``reader`` is one read transaction: a scrape's
pages and queue depth come from one snapshot. ``ops_reader`` adds what relay.ratelimits
reads outside the commit: counter values and a party's orders and aliases.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from relay.core.outcomes import DeliveryStatus, Role, Verdict
from relay.db import read_tx
from relay.store import counters
from relay.store.tables import (
    UTCDateTime,
    aliases,
    archive,
    deliveries,
    delivery_events,
    orders,
    parties,
)

# Findings are read only where a label needs them (the rule that rejected, redacted kinds).
_FINDINGS_FOR = (str(Verdict.REDACT), str(Verdict.REJECT))


class Reader:
    """Reads inside one transaction; each ``*_page`` returns rows with ``id > after``."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def records_page(self, after: int, limit: int) -> Sequence[Any]:
        """Rows of (id, created_at, kind, verdict, reason_code, findings) in id order."""
        a = archive.c
        findings = sa.case((a.verdict.in_(_FINDINGS_FOR), a.findings), else_="")
        q = sa.select(a.id, a.created_at, a.kind, a.verdict, a.reason_code,
                      findings.label("findings"))  # fmt: skip
        return (await self._conn.execute(q.where(a.id > after).order_by(a.id).limit(limit))).all()

    async def events_page(self, after: int, limit: int) -> Sequence[Any]:
        """Rows of (id, at, event, created_at of the delivery) in id order."""
        e, d = delivery_events.c, deliveries.c
        q = sa.select(e.id, e.at, e.event, d.created_at).select_from(
            delivery_events.outerjoin(deliveries, d.id == e.delivery_id)
        )
        return (await self._conn.execute(q.where(e.id > after).order_by(e.id).limit(limit))).all()

    async def queue_depth(
        self, states: Sequence[DeliveryStatus]
    ) -> list[tuple[str, int, Any]]:
        """(status, rows, oldest created_at) for each of ``states`` that has rows."""
        d = deliveries.c
        rows = await self._conn.execute(
            sa.select(d.status, sa.func.count(), sa.func.min(d.created_at, type_=UTCDateTime()))
            .where(d.status.in_([str(s) for s in states]))
            .group_by(d.status)
        )
        return [(str(status), int(count), first) for status, count, first in rows]


@asynccontextmanager
async def reader(engine: AsyncEngine) -> AsyncIterator[Reader]:
    async with read_tx(engine) as conn:
        yield Reader(conn)


class PartyFootprint(NamedTuple):
    """A party's id, its orders, and the aliases that stand for it (relay.ratelimits)."""

    party_id: int
    order_ids: list[str]
    aliases: list[str]


class OpsReader(Reader):
    """``Reader`` plus what ``relay limits`` and RCPT read: counters, a party's orders."""

    async def counters(
        self, idents: Iterable[tuple[str, str, int]]
    ) -> dict[tuple[str, str, int], int]:
        return await counters.read(self._conn, idents)

    async def party(self, email: str) -> PartyFootprint | None:
        """``email`` is a comparison key (relay.authn.fromaddr.canonical_address)."""
        o, al = orders.c, aliases.c
        found = (await self._conn.execute(sa.select(parties.c.id).where(parties.c.email == email)))
        pid = found.scalar()
        if pid is None:
            return None
        mine = sa.or_(o.buyer_id == pid, o.seller_id == pid)
        order_ids = (await self._conn.execute(sa.select(o.id).where(mine))).scalars().all()
        own = await self._conn.execute(
            sa.select(al.local_part)
            .join(orders, o.id == al.order_id)
            .where(
                sa.or_(
                    sa.and_(o.buyer_id == pid, al.stands_for == str(Role.BUYER)),
                    sa.and_(o.seller_id == pid, al.stands_for == str(Role.SELLER)),
                )
            )
        )
        return PartyFootprint(int(pid), list(order_ids), list(own.scalars().all()))


@asynccontextmanager
async def ops_reader(engine: AsyncEngine) -> AsyncIterator[OpsReader]:
    async with read_tx(engine) as conn:
        yield OpsReader(conn)
