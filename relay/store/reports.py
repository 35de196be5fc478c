"""Response times: the marketplace's 24-hour rule, measured from the archive.

Each buyer message that reached the seller starts a clock of 24 elapsed hours (weekends
and nights count: buyers wait through them too). The seller's next message in the same
order that reached the buyer stops it; automatic replies (RFC 3834, relay.mail.autoreply)
do not, since an out-of-office is not an answer (and a buyer's automatic reply starts no
clock: it asks nothing). A buyer message marked "no response needed" leaves the measure.
Several buyer messages before one reply each have a clock, all stopped by that reply: the
buyer waited for each of them.

Exemptions are insert-only facts (who said so, when, why), so a seller's late rate can
always be explained later.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from relay.authn.fromaddr import canonical_address
from relay.core.errors import ReportError as ReportError
from relay.core.errors import ReportInvalid, ReportNotFound
from relay.db import read_tx, write_tx
from relay.store.search import archive_text, catch_up
from relay.store.tables import UTCDateTime, archive, orders, parties, utcnow

DEADLINE = timedelta(hours=24)
WINDOWS = (7, 30, 90)
_REACHED = ("deliver", "redact")  # verdicts under which the other party got the message

_meta = sa.MetaData()
response_exemptions = sa.Table(
    "response_exemptions",
    _meta,
    sa.Column("archive_id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("order_id", sa.String(19), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("created_by", sa.String(20), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)


@dataclass
class _Tally:
    seller: str
    buyer_messages: int = 0
    answered: int = 0
    answered_late: int = 0
    open_overdue: int = 0
    open_within_deadline: int = 0
    exempted: int = 0
    total_seconds: float = 0.0

    def as_dict(self, overdue: list[dict[str, Any]]) -> dict[str, Any]:
        decided = self.answered + self.open_overdue
        late = self.answered_late + self.open_overdue
        return {
            "seller": self.seller,
            "buyer_messages": self.buyer_messages,
            "answered": self.answered,
            "answered_late": self.answered_late,
            "open_overdue": self.open_overdue,
            "open_within_deadline": self.open_within_deadline,
            "exempted": self.exempted,
            "late_rate": round(late / decided, 4) if decided else None,
            "average_response_seconds": (
                round(self.total_seconds / self.answered, 1) if self.answered else None
            ),
            "overdue": overdue,
        }


async def response_times(
    engine: AsyncEngine,
    *,
    days: int = 30,
    seller: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Per seller: late-response rate, average response time, open overdue messages."""
    if days not in WINDOWS:
        raise ReportInvalid(f"days must be one of {', '.join(map(str, WINDOWS))}", "days")
    now = now or utcnow()
    since = now - timedelta(days=days)
    seller = canonical_address(seller) if seller else None  # the parties.email key
    await catch_up(engine)  # the automatic-reply flag lives in archive_text
    asks = (
        sa.select(
            archive.c.id,
            archive.c.order_id,
            archive.c.created_at,
            parties.c.email.label("seller"),
            response_exemptions.c.archive_id.is_not(None).label("exempt"),
        )
        .join(orders, orders.c.id == archive.c.order_id)
        .join(parties, parties.c.id == orders.c.seller_id)
        .outerjoin(response_exemptions, response_exemptions.c.archive_id == archive.c.id)
        .outerjoin(archive_text, archive_text.c.archive_id == archive.c.id)
        .where(
            archive.c.kind == "message",
            archive.c.direction == "buyer-to-seller",
            archive.c.verdict.in_(_REACHED),
            archive.c.created_at >= since,
            # The buyer's own out-of-office asks nothing of the seller.
            sa.func.coalesce(archive_text.c.automatic, sa.false()) == sa.false(),
        )
    )
    if seller:
        asks = asks.where(parties.c.email == seller)
    answers = (
        sa.select(archive.c.order_id, archive.c.created_at)
        .outerjoin(archive_text, archive_text.c.archive_id == archive.c.id)
        .where(
            archive.c.kind == "message",
            archive.c.direction == "seller-to-buyer",
            archive.c.verdict.in_(_REACHED),
            archive.c.created_at >= since,
            sa.func.coalesce(archive_text.c.automatic, sa.false()) == sa.false(),
        )
    )
    async with read_tx(engine) as conn:
        ask_rows = (await conn.execute(asks.order_by(archive.c.created_at))).all()
        order_ids = sorted({r.order_id for r in ask_rows})
        replies: dict[str, list[datetime]] = defaultdict(list)
        for start in range(0, len(order_ids), 500):
            chunk = order_ids[start : start + 500]
            rows = await conn.execute(answers.where(archive.c.order_id.in_(chunk)))
            for r in rows:
                replies[r.order_id].append(r.created_at)
    for times in replies.values():
        times.sort()
    tallies: dict[str, _Tally] = {}
    overdue: dict[str, list[dict[str, Any]]] = defaultdict(list)
    if seller:
        tallies[seller] = _Tally(seller)
    for r in ask_rows:
        t = tallies.setdefault(r.seller, _Tally(r.seller))
        if r.exempt:
            t.exempted += 1
            continue
        t.buyer_messages += 1
        times = replies.get(r.order_id, [])
        i = bisect.bisect_right(times, r.created_at)
        if i < len(times):
            waited = times[i] - r.created_at
            t.answered += 1
            t.total_seconds += waited.total_seconds()
            t.answered_late += waited > DEADLINE
        elif now - r.created_at > DEADLINE:
            t.open_overdue += 1
            overdue[r.seller].append({
                "archive_id": r.id,
                "order_id": r.order_id,
                "received_at": r.created_at.isoformat(),
                "hours_waiting": round((now - r.created_at).total_seconds() / 3600, 1),
            })  # fmt: skip
        else:
            t.open_within_deadline += 1
    return {
        "generated_at": now.isoformat(),
        "days": days,
        "deadline_hours": int(DEADLINE.total_seconds() // 3600),
        "sellers": [tallies[k].as_dict(overdue[k]) for k in sorted(tallies)],
    }


async def exempt(
    engine: AsyncEngine, order_id: str, archive_id: int, *, reason: str = "", by: str = ""
) -> dict[str, Any]:
    """Mark a buyer message "no response needed". Idempotent: a second mark returns the
    first one unchanged (exemptions are never edited)."""
    async with write_tx(engine) as conn:
        row = (
            await conn.execute(
                sa.select(archive.c.order_id, archive.c.direction, archive.c.kind).where(
                    archive.c.id == archive_id
                )
            )
        ).first()
        if row is None or row.order_id != order_id:
            raise ReportNotFound(f"order {order_id} has no message {archive_id}")
        if row.direction != "buyer-to-seller" or row.kind != "message":
            raise ReportInvalid("only a buyer's message can need no response", "archive_id")
        found = (
            await conn.execute(
                sa.select(response_exemptions).where(response_exemptions.c.archive_id == archive_id)
            )
        ).first()
        if found is None:
            values = {"archive_id": archive_id, "order_id": order_id, "reason": reason,
                      "created_by": by, "created_at": utcnow()}  # fmt: skip
            await conn.execute(response_exemptions.insert().values(**values))
            found = (
                await conn.execute(
                    sa.select(response_exemptions).where(
                        response_exemptions.c.archive_id == archive_id
                    )
                )
            ).first()
    assert found is not None
    return {
        "archive_id": found.archive_id,
        "order_id": found.order_id,
        "reason": found.reason,
        "created_at": found.created_at.isoformat(),
    }


async def thread(engine: AsyncEngine, order_id: str) -> list[dict[str, Any]]:
    """An order's messages for the marketplace: no addresses, no bodies, no findings.

    The subject is shown only for messages delivered unchanged: a redacted or refused
    message's original subject may hold exactly what the policy kept from the other party.
    """
    q = (
        sa.select(
            archive.c.id,
            archive.c.created_at,
            archive.c.direction,
            archive.c.verdict,
            archive.c.subject,
            response_exemptions.c.archive_id.is_not(None).label("exempt"),
        )
        .outerjoin(response_exemptions, response_exemptions.c.archive_id == archive.c.id)
        .where(archive.c.order_id == order_id, archive.c.kind == "message")
        .order_by(archive.c.id)
    )
    async with read_tx(engine) as conn:
        rows = (await conn.execute(q)).all()
    return [
        {
            "id": r.id,
            "created_at": r.created_at.isoformat(),
            "direction": r.direction,
            "verdict": r.verdict,
            "subject": r.subject if r.verdict == "deliver" else "",
            "no_response_needed": bool(r.exempt),
        }
        for r in rows
    ]
