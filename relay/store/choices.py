"""What the marketplace records for its users: a buyer's opt-out (of one order's seller or
of every seller) and opting back in, and "this thread needs no reply".

The CLI (``relay order opt-out``, ``relay party opt-out``, ``relay order no-reply-needed``)
and the API call these; the relay reads the results at the next message
(relay.ratelimits, relay.store.reports). Errors are ChoiceError, worded for the caller.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from relay.authn.fromaddr import canonical_address
from relay.core.errors import ChoiceError as ChoiceError
from relay.db import read_tx, write_tx
from relay.store import optouts
from relay.store.tables import archive, orders, parties, utcnow


async def _order_exists(engine: AsyncEngine, order_id: str) -> None:
    async with read_tx(engine) as conn:
        found = (await conn.execute(sa.select(orders.c.id).where(orders.c.id == order_id))).first()
    if found is None:
        raise ChoiceError(f"no order {order_id}")


async def _party_id(engine: AsyncEngine, email: str) -> int:
    try:
        key = canonical_address(email)
    except Exception:
        raise ChoiceError(f"not an address: {email!r}") from None
    async with read_tx(engine) as conn:
        row = (await conn.execute(sa.select(parties.c.id).where(parties.c.email == key))).first()
    if row is None:
        raise ChoiceError(f"no party {email}")
    return int(row.id)


async def order_opt_out(engine: AsyncEngine, order_id: str, *, by: str = "") -> dict[str, Any]:
    """The buyer of ``order_id`` wants no more proactive messages from its seller."""
    await _order_exists(engine, order_id)
    row = await optouts.set_opt_out(engine, "order", order_id, by=by)
    return {"order_id": order_id, "opted_out": True, "since": row["created_at"],
            "by": row["created_by"]}  # fmt: skip


async def order_opt_in(engine: AsyncEngine, order_id: str) -> dict[str, Any]:
    await _order_exists(engine, order_id)
    removed = await optouts.clear_opt_out(engine, "order", order_id)
    return {"order_id": order_id, "opted_out": False, "removed": removed}


async def party_opt_out(engine: AsyncEngine, email: str, *, by: str = "") -> dict[str, Any]:
    """A buyer opts out account-wide: no seller's proactive messages, in any order."""
    pid = await _party_id(engine, email)
    row = await optouts.set_opt_out(engine, "party", str(pid), by=by)
    return {"party": canonical_address(email), "opted_out": True, "since": row["created_at"],
            "by": row["created_by"]}  # fmt: skip


async def party_opt_in(engine: AsyncEngine, email: str) -> dict[str, Any]:
    pid = await _party_id(engine, email)
    removed = await optouts.clear_opt_out(engine, "party", str(pid))
    return {"party": canonical_address(email), "opted_out": False, "removed": removed}


async def order_status(engine: AsyncEngine, order_id: str) -> dict[str, Any]:
    """The order's own opt-out and its buyer's account-wide one."""
    await _order_exists(engine, order_id)
    async with read_tx(engine) as conn:
        buyer = (
            await conn.execute(sa.select(orders.c.buyer_id).where(orders.c.id == order_id))
        ).scalar_one()
    return {
        "order_id": order_id,
        "order_opt_out": await optouts.get_opt_out(engine, "order", order_id),
        "buyer_opt_out": await optouts.get_opt_out(engine, "party", str(buyer)),
    }


async def no_reply_needed(
    engine: AsyncEngine, order_id: str, *, reason: str = "", by: str = ""
) -> dict[str, Any]:
    """Mark the order's open thread as needing no reply: every buyer message that reached
    the seller after the seller's last message gets a response exemption (relay.store.reports),
    so the 24-hour report no longer counts it. Later buyer messages start new clocks."""
    from relay.store.reports import response_exemptions

    await _order_exists(engine, order_id)
    reached = ("deliver", "redact")
    async with write_tx(engine) as conn:
        last_answer = (
            await conn.execute(
                sa.select(sa.func.max(archive.c.id)).where(
                    archive.c.order_id == order_id,
                    archive.c.kind == "message",
                    archive.c.direction == "seller-to-buyer",
                    archive.c.verdict.in_(reached),
                )
            )
        ).scalar() or 0
        open_ids = (
            await conn.execute(
                sa.select(archive.c.id)
                .outerjoin(response_exemptions, response_exemptions.c.archive_id == archive.c.id)
                .where(
                    archive.c.order_id == order_id,
                    archive.c.kind == "message",
                    archive.c.direction == "buyer-to-seller",
                    archive.c.verdict.in_(reached),
                    archive.c.id > last_answer,
                    response_exemptions.c.archive_id.is_(None),
                )
                .order_by(archive.c.id)
            )
        ).scalars().all()
        if open_ids:
            now = utcnow()
            await conn.execute(
                response_exemptions.insert(),
                [{"archive_id": i, "order_id": order_id, "created_at": now,
                  "reason": reason or "thread needs no reply", "created_by": by[:20]}
                 for i in open_ids],
            )  # fmt: skip
    return {"order_id": order_id, "exempted": list(open_ids)}
