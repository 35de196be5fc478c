"""Held messages: the policy's third answer, and what ops decide about each.

A ``hold`` verdict (relay.policy: an image it cannot read, a language it cannot identify,
an attachment over the reading budget) is accepted with 250 and archived with verdict
``hold`` and the bytes it would deliver, but no delivery is queued. Ops then decide, once:

* ``release``: the archived delivered copy is queued through the normal delivery queue
  (a ``deliveries`` row with a fresh signed return path, its Message-ID mapped for
  threading), exactly as the pipeline would have queued it;
* ``refuse``: the sender gets a notice naming the rule (relay.bounce's notice: the alias,
  subject and time of their own message, never the other party's address).

Each decision is one row of ``hold_decisions`` (who, when, what, why), append-only: the
archive itself is never updated, and a second decision for the same hold is refused by
the table's unique key, so two operators cannot both act on one message.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import regex
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from relay import bounce
from relay.core.errors import HoldDecided, HoldNotFound
from relay.core.errors import HoldError as HoldError
from relay.core.outcomes import Direction, Role, Verdict
from relay.db import read_tx, write_tx
from relay.mail.verp import new_token, return_path
from relay.store import ledger, originals, queue
from relay.store.tables import BigId, UTCDateTime, archive, metadata, utcnow

Decision = Literal["release", "refuse"]

hold_decisions = sa.Table(
    "hold_decisions",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("archive_id", BigId, sa.ForeignKey("archive.id"), nullable=False, unique=True),
    sa.Column("decision", sa.String(10), nullable=False),  # release | refuse
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("decided_by", sa.String(64), nullable=False, server_default=""),
    sa.Column("decided_at", UTCDateTime, nullable=False),
    sa.Column("delivery_id", BigId, nullable=True),  # the queued delivery of a release
)

ALERT_AFTER = timedelta(hours=24)   # relay.settings policy.hold_alert_after (configure)


@dataclass(frozen=True)
class Hold:
    id: int
    created_at: datetime
    order_id: str
    direction: str
    alias: str
    subject: str
    reason: str
    rules: tuple[str, ...]
    decision: str = ""
    decided_by: str = ""
    decided_at: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "created_at": self.created_at.isoformat(), "order_id": self.order_id,
            "direction": self.direction, "alias": self.alias, "subject": self.subject,
            "reason": self.reason, "rules": list(self.rules), "decision": self.decision,
            "decided_by": self.decided_by,
            "decided_at": self.decided_at.isoformat() if self.decided_at else None,
        }  # fmt: skip


def configure(alert_after: timedelta) -> None:
    global ALERT_AFTER
    ALERT_AFTER = alert_after


def _rules(findings: str) -> tuple[str, ...]:
    import json

    try:
        items = json.loads(findings or "[]")
    except ValueError:
        return ()
    return tuple(dict.fromkeys(f.get("rule", "") for f in items if f.get("action") == "hold"))


def _select() -> sa.Select[Any]:
    a, h = archive.c, hold_decisions.c
    return (
        sa.select(a.id, a.created_at, a.order_id, a.direction, a.alias, a.subject, a.reason,
                  a.findings, h.decision, h.decided_by, h.decided_at)
        .select_from(archive.outerjoin(hold_decisions, hold_decisions.c.archive_id == a.id))
        .where(a.verdict == str(Verdict.HOLD), a.kind == "message")
    )  # fmt: skip


def _hold(row: Any) -> Hold:
    return Hold(row.id, row.created_at, row.order_id or "", row.direction, row.alias,
                row.subject, row.reason, _rules(row.findings), row.decision or "",
                row.decided_by or "", row.decided_at)  # fmt: skip


async def list_holds(engine: AsyncEngine, *, pending: bool = True, limit: int = 200) -> list[Hold]:
    """Holds oldest first; ``pending``: only those no one has decided yet."""
    q = _select().order_by(archive.c.id).limit(limit)
    if pending:
        q = q.where(hold_decisions.c.id.is_(None))
    async with read_tx(engine) as conn:
        return [_hold(r) for r in (await conn.execute(q)).all()]


async def get_hold(engine: AsyncEngine, archive_id: int) -> Hold:
    async with read_tx(engine) as conn:
        row = (await conn.execute(_select().where(archive.c.id == archive_id))).first()
    if row is None:
        raise HoldNotFound(f"no held message {archive_id}")
    return _hold(row)


async def overdue(engine: AsyncEngine, older_than: timedelta | None = None) -> int:
    """Undecided holds older than ``older_than`` (default: the configured alert age)."""
    cutoff = utcnow() - (older_than if older_than is not None else ALERT_AFTER)
    q = (
        sa.select(sa.func.count())
        .select_from(archive.outerjoin(hold_decisions, hold_decisions.c.archive_id == archive.c.id))
        .where(archive.c.verdict == str(Verdict.HOLD), hold_decisions.c.id.is_(None),
               archive.c.created_at < cutoff)
    )  # fmt: skip
    async with read_tx(engine) as conn:
        return int((await conn.execute(q)).scalar_one())


async def release(
    engine: AsyncEngine, archive_id: int, *, by: str, verp_key: bytes, domain: str,
    bounce_prefix: str = "bounce", at: datetime | None = None,
) -> int:
    """Queue the held message for delivery; returns the delivery id."""
    now = at or utcnow()
    try:
        async with write_tx(engine) as conn:
            row = await _undecided(conn, archive_id)
            if row.delivered is None:
                raise HoldNotFound(f"held message {archive_id} has no copy to deliver")
            token = new_token()
            rp = return_path(token, key=verp_key, domain=domain, prefix=bounce_prefix)
            delivery_id = await queue.enqueue_one(
                conn, queue.NewDelivery(archive_id, token, rp, row.rcpt, bool(row.mail_from)),
                now=now,
            )
            author = Role.SELLER if row.direction == Direction.SELLER_TO_BUYER else Role.BUYER
            if row.relay_message_id:
                ids = regex.findall(r"<[^<>\s]+@[^<>\s]+>", row.message_id or "")
                await ledger.map_message_ids(conn, [{
                    "relay_id": row.relay_message_id,
                    "original_id": ids[0] if len(ids) == 1 else "", "order_id": row.order_id or "",
                    "author": str(author), "archive_id": archive_id, "created_at": now,
                }])  # fmt: skip
            await conn.execute(hold_decisions.insert().values(
                archive_id=archive_id, decision="release", reason="", decided_by=by[:64],
                decided_at=now, delivery_id=delivery_id))  # fmt: skip
    except IntegrityError:
        raise HoldDecided(f"held message {archive_id} was already decided") from None
    return delivery_id


_CONTACT = regex.compile(r"\S+@\S+|\+?\d[\d\s().\-/]{5,}\d|https?://\S+|www\.\S+")


async def refuse(
    engine: AsyncEngine, archive_id: int, *, by: str, reason: str, domain: str,
    marketplace: str, at: datetime | None = None,
) -> bool:
    """Record the refusal and send the sender a notice naming the rule; True when a
    notice was queued (automatic mail and notices are never answered)."""
    from relay.store.commit import commit_now

    now = at or utcnow()
    try:
        async with write_tx(engine) as conn:
            row = await _undecided(conn, archive_id)
            await conn.execute(hold_decisions.insert().values(
                archive_id=archive_id, decision="refuse", reason=reason[:2000],
                decided_by=by[:64], decided_at=now))  # fmt: skip
            original = bounce.original_from(await originals.head(conn, archive_id))
    except IntegrityError:
        raise HoldDecided(f"held message {archive_id} was already decided") from None
    if original is None:
        return False
    rules = ", ".join(_rules(row.findings)) or "policy"
    # ops' words reach the sender, but never an address, number or link
    said = " ".join(_CONTACT.sub("", reason).split())[:300]
    text = f"refused after review (rule {rules})" + (f": {said}" if said else "")
    entry = bounce.notice_entry(original, reason=text, domain=domain, marketplace=marketplace,
                                now=now)
    if entry is None:
        return False
    await commit_now(engine, [entry])
    return True


async def _undecided(conn: Any, archive_id: int) -> Any:
    a = archive.c
    row = (
        await conn.execute(
            sa.select(a.id, a.verdict, a.kind, a.rcpt, a.mail_from, a.direction, a.order_id,
                      a.relay_message_id, a.message_id, a.findings, a.delivered,
                      hold_decisions.c.id.label("decided"))
            .select_from(archive.outerjoin(hold_decisions,
                                           hold_decisions.c.archive_id == a.id))
            .where(a.id == archive_id)
        )
    ).first()
    if row is None or row.verdict != Verdict.HOLD or row.kind != "message":
        raise HoldNotFound(f"no held message {archive_id}")
    if row.decided is not None:
        raise HoldDecided(f"held message {archive_id} was already decided")
    return row
