"""Buyer opt-outs: ``opt_outs(scope, key, created_at, created_by)``.

The buyer says "stop messages from this seller" (scope ``order``, key the order id) or
opts out account-wide (scope ``party``, key the buyer's party id). A row is the current
state with who set it and when; opting back in deletes it. What an opt-out refuses, and
what still goes through (replies, critical messages), is relay.ratelimits' decision.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from relay.db import read_tx, write_tx
from relay.store.tables import UTCDateTime, metadata, utcnow

Scope = Literal["order", "party"]

opt_outs = sa.Table(
    "opt_outs",
    metadata,
    sa.Column("scope", sa.String(10), primary_key=True),  # order | party
    sa.Column("key", sa.String(64), primary_key=True),  # order id | buyer party id
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("created_by", sa.String(40), nullable=False, server_default=""),
)


async def set_opt_out(
    engine: AsyncEngine, scope: Scope, key: str, *, by: str = "", at: datetime | None = None
) -> dict[str, Any]:
    """Record an opt-out; idempotent (a second one keeps the first who and when)."""
    async with write_tx(engine) as conn:
        row = await _get(conn, scope, key)
        if row is None:
            await conn.execute(
                opt_outs.insert().values(
                    scope=scope, key=key, created_at=at or utcnow(), created_by=by[:40]
                )
            )
            row = await _get(conn, scope, key)
    assert row is not None
    return row


async def clear_opt_out(engine: AsyncEngine, scope: Scope, key: str) -> bool:
    """Opt back in; True if there was an opt-out to remove."""
    async with write_tx(engine) as conn:
        result = await conn.execute(
            sa.delete(opt_outs).where(opt_outs.c.scope == scope, opt_outs.c.key == key)
        )
    return bool(result.rowcount)


async def get_opt_out(engine: AsyncEngine, scope: Scope, key: str) -> dict[str, Any] | None:
    async with read_tx(engine) as conn:
        return await _get(conn, scope, key)


async def opted_out(engine: AsyncEngine, order_id: str, buyer_id: int) -> Scope | None:
    """Which opt-out (if any) covers this order's buyer: the order's own first."""
    async with read_tx(engine) as conn:
        rows = await conn.execute(
            sa.select(opt_outs.c.scope).where(
                sa.or_(
                    sa.and_(opt_outs.c.scope == "order", opt_outs.c.key == order_id),
                    sa.and_(opt_outs.c.scope == "party", opt_outs.c.key == str(buyer_id)),
                )
            )
        )
        scopes = {r.scope for r in rows}
    if "order" in scopes:
        return "order"
    return "party" if "party" in scopes else None


async def _get(conn: AsyncConnection, scope: str, key: str) -> dict[str, Any] | None:
    row = (
        await conn.execute(
            sa.select(opt_outs).where(opt_outs.c.scope == scope, opt_outs.c.key == key)
        )
    ).first()
    if row is None:
        return None
    return {
        "scope": row.scope,
        "key": row.key,
        "created_at": row.created_at.isoformat(),
        "created_by": row.created_by,
    }
