"""RCPT TO: address -> alias, the party it reaches, and the counterpart allowed to write.

Unknown, closed and expired aliases get one uniform answer, so the reply never tells a
prober whether an alias ever existed.
"""

from __future__ import annotations

from collections import namedtuple
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine

from relay.core import replies
from relay.core.replies import Reply
from relay.db import read_tx
from relay.store import dbthread
from relay.store.tables import aliases, orders, parties, party_senders, utcnow

if TYPE_CHECKING:  # importing relay.policy loads the whole engine
    from relay.policy.model import Direction


@dataclass(frozen=True)
class Resolution:
    """An alias recipient, with everything the rest of the pipeline needs about its order."""

    alias: str
    order_id: str
    stands_for: str  # the party this alias reaches: buyer|seller
    recipient_email: str
    recipient_name: str
    sender_role: str  # the counterpart, the only party allowed to write here
    sender_emails: frozenset[str]
    sender_name: str
    sender_alias: str  # the counterpart's own alias: From of the delivered copy
    sender_allow_spf_only: bool
    buyer_locale: str
    delivered_at: datetime | None
    sender_party_id: int = 0  # parties.id of the counterpart (relay.ratelimits counts by it)
    recipient_party_id: int = 0

    @property
    def direction(self) -> Direction:
        # sender_role is always the other party of stands_for (see _lookup)
        return "seller-to-buyer" if self.sender_role == "seller" else "buyer-to-seller"


def split_address(address: str) -> tuple[str, str]:
    """(local part, domain), both case-folded; a U-label domain in its A-label form, so
    ``bücher.example`` and ``xn--bcher-kva.example`` are one domain (RFC 6531 envelopes)."""
    local, at, domain = address.strip().strip("<>").rpartition("@")
    if not at or not local or not domain:
        raise ValueError("no domain")
    return local.lower(), _a_label(domain.lower().rstrip("."))


def _a_label(domain: str) -> str:
    if domain.isascii():
        return domain
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return domain  # not a valid IDN: compares unequal to ours, refused as relaying


# RFC 5321 4.5.1 (postmaster, also bare ``<Postmaster>``) and RFC 2142 (abuse): accepted
# from anyone, for the ops mailbox only (relay.smtp.postmaster).
OPS_MAILBOXES = frozenset({"postmaster", "abuse"})


def ops_mailbox(address: str, relay_domain: str) -> str | None:
    """``postmaster`` or ``abuse`` if ``address`` is that mailbox of the relay domain (any
    case), else None."""
    bare = address.strip().strip("<>").strip()
    if bare.lower() == "postmaster":
        return "postmaster"
    try:
        local, domain = split_address(bare)
    except ValueError:
        return None
    return local if local in OPS_MAILBOXES and domain == relay_domain else None


def _alias_query() -> sa.Select[Any]:
    """Built once: the alias, its order, both parties and the counterpart's extra senders
    in one round trip (one row per authorised sender)."""
    me, other = aliases.alias("me"), aliases.alias("other")
    rp, sp = parties.alias("rp"), parties.alias("sp")
    buyer_alias = me.c.stands_for == "buyer"
    return (
        sa.select(
            me.c.stands_for,
            other.c.local_part.label("other_local"),
            orders.c.id,
            orders.c.status,
            orders.c.expires_at,
            orders.c.buyer_locale,
            orders.c.buyer_name,
            orders.c.seller_name,
            orders.c.delivered_at,
            # Delivered to as registered (mixed case, U-label); the key when not kept.
            sa.func.coalesce(sa.func.nullif(rp.c.registered_email, ""), rp.c.email).label(
                "recipient_email"
            ),
            sp.c.email.label("sender_email"),
            sp.c.allow_spf_only,
            party_senders.c.email.label("extra_sender"),
            sp.c.id.label("sender_party_id"),
            rp.c.id.label("recipient_party_id"),
        )
        .join(orders, orders.c.id == me.c.order_id)
        .join(
            other, sa.and_(other.c.order_id == me.c.order_id, other.c.stands_for != me.c.stands_for)
        )
        .join(rp, rp.c.id == sa.case((buyer_alias, orders.c.buyer_id), else_=orders.c.seller_id))
        .join(sp, sp.c.id == sa.case((buyer_alias, orders.c.seller_id), else_=orders.c.buyer_id))
        .outerjoin(party_senders, party_senders.c.party_id == sp.c.id)
        .where(me.c.local_part == sa.bindparam("local"))
    )


_QUERY = _alias_query()
_Row = namedtuple("_Row", _QUERY.selected_columns.keys())  # type: ignore[misc]
_SQLITE: dict[Dialect, dbthread.Select] = {}  # per dialect: the query compiled for sqlite3


async def resolve_alias(engine: AsyncEngine, relay_domain: str, address: str) -> Resolution | Reply:
    """No cache on purpose: closing an order or authorising a sender (from any process)
    must take effect at the next RCPT. The prebuilt query keeps the lookup cheap, and on
    SQLite it is one hand-off to the database thread (relay.store.dbthread)."""
    try:
        local, domain = split_address(address)
    except ValueError:
        return replies.SYNTAX_ADDRESS
    if domain != relay_domain:
        return replies.RELAY_DENIED
    return await _lookup(engine, relay_domain, local)


async def _rows(engine: AsyncEngine, local: str) -> list[Any]:
    """The alias's rows, read in one snapshot: one statement (on SQLite in autocommit, its
    own read transaction; elsewhere in ``read_tx``)."""
    if engine.dialect.name != "sqlite":
        async with read_tx(engine) as conn:
            return list((await conn.execute(_QUERY, {"local": local})).all())
    select = _SQLITE.get(engine.dialect)
    if select is None:
        select = _SQLITE[engine.dialect] = dbthread.Select(_QUERY, engine.dialect)
    rows = await dbthread.run_pooled(engine, partial(select.all, params={"local": local}))
    return [_Row._make(r) for r in rows]


async def _lookup(engine: AsyncEngine, relay_domain: str, local: str) -> Resolution | Reply:
    rows = await _rows(engine, local)
    if not rows:
        return replies.NO_SUCH_ALIAS
    row = rows[0]
    if row.status != "open" or (row.expires_at and row.expires_at <= utcnow()):
        return replies.NO_SUCH_ALIAS
    senders = frozenset([row.sender_email, *(r.extra_sender for r in rows if r.extra_sender)])
    names = {"buyer": row.buyer_name, "seller": row.seller_name}
    sender_role = "seller" if row.stands_for == "buyer" else "buyer"
    return Resolution(
        alias=f"{local}@{relay_domain}",
        order_id=row.id,
        stands_for=row.stands_for,
        recipient_email=row.recipient_email,
        recipient_name=names[row.stands_for],
        sender_role=sender_role,
        sender_emails=senders,
        sender_name=names[sender_role],
        sender_alias=f"{row.other_local}@{relay_domain}",
        sender_allow_spf_only=bool(row.allow_spf_only),
        buyer_locale=row.buyer_locale,
        delivered_at=row.delivered_at,
        sender_party_id=row.sender_party_id,
        recipient_party_id=row.recipient_party_id,
    )
