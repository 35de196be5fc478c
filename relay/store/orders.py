"""Orders, parties and their aliases: what the marketplace provisions.

An order joins one buyer and one seller and owns two aliases on the relay domain. Alias
local parts carry 100 random bits, so they cannot be guessed or enumerated.
"""

from __future__ import annotations

import base64
import re
import secrets
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from relay.authn.fromaddr import FromError, canonical_address, parse_mailbox
from relay.core.errors import OrderConflict, OrderInvalid, OrderNotFound
from relay.core.errors import OrderError as OrderError
from relay.db import inserted_id, read_tx, write_tx
from relay.store.tables import aliases, orders, parties, party_senders, utcnow

ORDER_ID = re.compile(r"^\d{3}-\d{7}-\d{7}$")
LOCALE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
ROLES = ("buyer", "seller")


def parse_email(value: str) -> tuple[str, str]:
    """(comparison key, address as given) of a bare address; raises OrderError.

    Validated by the strict From reader (relay.authn.fromaddr), since an address it would
    refuse in a From header could never write through the relay. The key (NFC, lower-case
    local part, A-label domain) is what lookups and sender checks compare; the address as
    given is what the party is shown, delivered to and archived as.
    """
    value = value.strip()
    if not value or "<" in value or any(ch.isspace() for ch in value):
        raise OrderInvalid(f"not an email address: {value!r}")
    try:
        parse_mailbox(value)
    except FromError:
        raise OrderInvalid(f"not an email address: {value!r}") from None
    return canonical_address(value), value.rstrip(".")


def normalize_email(value: str) -> str:
    """The comparison key of an address (see ``parse_email``); raises OrderError."""
    return parse_email(value)[0]


def _shown(column: Any) -> Any:
    """The registered spelling, or the key for rows from before it was kept."""
    return sa.func.coalesce(sa.func.nullif(column.table.c.registered_email, ""), column)


def new_local_part(stands_for: str) -> str:
    """``b-``/``s-`` plus 100 random bits in lower-case base32 (20 characters)."""
    token = base64.b32encode(secrets.token_bytes(13)).decode().lower().rstrip("=")[:20]
    return f"{stands_for[0]}-{token}"


@dataclass(frozen=True)
class OrderView:
    id: str
    status: str
    buyer: str
    seller: str
    buyer_name: str
    seller_name: str
    buyer_locale: str
    buyer_alias: str
    seller_alias: str
    created_at: datetime
    closed_at: datetime | None
    delivered_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key in ("created_at", "closed_at", "delivered_at"):
            d[key] = d[key].isoformat() if d[key] else None
        return d


async def _party_id(conn: AsyncConnection, email: tuple[str, str], name: str) -> int:
    key, given = email
    row = (
        await conn.execute(
            sa.select(parties.c.id, parties.c.registered_email).where(parties.c.email == key)
        )
    ).first()
    if row:
        values: dict[str, Any] = {"display_name": name} if name else {}
        if given != (row.registered_email or key):
            values["registered_email"] = given  # the marketplace's current spelling
        if values:
            await conn.execute(parties.update().where(parties.c.id == row.id).values(**values))
        return int(row.id)
    result = await conn.execute(
        parties.insert().values(
            email=key, registered_email=given, display_name=name, created_at=utcnow()
        )
    )
    return inserted_id(result)


def _check_not_ours(email: str, relay_domain: str) -> None:
    domain = email.rpartition("@")[2]
    if domain == relay_domain or domain.endswith("." + relay_domain):
        raise OrderInvalid(f"a party address cannot be on the relay domain: {email}")


async def create_order(
    engine: AsyncEngine,
    relay_domain: str,
    order_id: str,
    *,
    buyer: str,
    seller: str,
    buyer_locale: str = "en-US",
    buyer_name: str = "",
    seller_name: str = "",
    delivered_at: datetime | None = None,
) -> OrderView:
    if not ORDER_ID.match(order_id):
        raise OrderInvalid(f"order id must look like NNN-NNNNNNN-NNNNNNN: {order_id!r}")
    if not LOCALE.match(buyer_locale):
        raise OrderInvalid(f"not a BCP 47 locale: {buyer_locale!r}")
    buyer_addr, seller_addr = parse_email(buyer), parse_email(seller)
    if buyer_addr[0] == seller_addr[0]:
        raise OrderConflict("buyer and seller must have different addresses", "seller")
    for key, _ in (buyer_addr, seller_addr):
        _check_not_ours(key, relay_domain)
    buyer_name, seller_name = _clean_name(buyer_name), _clean_name(seller_name)
    async with write_tx(engine) as conn:
        exists = await conn.execute(sa.select(orders.c.id).where(orders.c.id == order_id))
        if exists.first():
            raise OrderConflict(f"order {order_id} already exists", "order_id")
        now = utcnow()
        await conn.execute(
            orders.insert().values(
                id=order_id,
                buyer_id=await _party_id(conn, buyer_addr, buyer_name),
                seller_id=await _party_id(conn, seller_addr, seller_name),
                buyer_locale=buyer_locale,
                buyer_name=buyer_name,
                seller_name=seller_name,
                status="open",
                created_at=now,
                delivered_at=delivered_at,
            )
        )
        for role in ROLES:
            await conn.execute(
                aliases.insert().values(
                    local_part=new_local_part(role),
                    order_id=order_id,
                    stands_for=role,
                    created_at=now,
                )
            )
        view = await _load(conn, relay_domain, order_id)
    assert view is not None
    return view


def _clean_name(name: str) -> str:
    """Display names end up in a From header: no control characters, bounded length."""
    return " ".join("".join(ch for ch in name if ch.isprintable()).split())[:200]


def _order_query() -> sa.Select[Any]:
    b, s = parties.alias("b"), parties.alias("s")
    ba, sa_ = aliases.alias("ba"), aliases.alias("sa")
    return (
        sa.select(
            orders,
            _shown(b.c.email).label("buyer_email"),
            _shown(s.c.email).label("seller_email"),
            ba.c.local_part.label("buyer_local"),
            sa_.c.local_part.label("seller_local"),
        )
        .join(b, b.c.id == orders.c.buyer_id)
        .join(s, s.c.id == orders.c.seller_id)
        .join(ba, sa.and_(ba.c.order_id == orders.c.id, ba.c.stands_for == "buyer"))
        .join(sa_, sa.and_(sa_.c.order_id == orders.c.id, sa_.c.stands_for == "seller"))
    )


def _view(row: Any, relay_domain: str) -> OrderView:
    return OrderView(
        id=row.id,
        status=row.status,
        buyer=row.buyer_email,
        seller=row.seller_email,
        buyer_name=row.buyer_name,
        seller_name=row.seller_name,
        buyer_locale=row.buyer_locale,
        buyer_alias=f"{row.buyer_local}@{relay_domain}",
        seller_alias=f"{row.seller_local}@{relay_domain}",
        created_at=row.created_at,
        closed_at=row.closed_at,
        delivered_at=row.delivered_at,
    )


async def _load(conn: AsyncConnection, relay_domain: str, order_id: str) -> OrderView | None:
    row = (await conn.execute(_order_query().where(orders.c.id == order_id))).first()
    return _view(row, relay_domain) if row else None


async def get_order(engine: AsyncEngine, relay_domain: str, order_id: str) -> OrderView:
    async with read_tx(engine) as conn:
        view = await _load(conn, relay_domain, order_id)
    if view is None:
        raise OrderNotFound(f"no such order: {order_id}")
    return view


async def list_orders(
    engine: AsyncEngine,
    relay_domain: str,
    *,
    party: str | None = None,
    status: str | None = None,
    limit: int = 100,
) -> list[OrderView]:
    query = _order_query().order_by(orders.c.created_at.desc()).limit(limit)
    if status:
        query = query.where(orders.c.status == status)
    if party:
        email = normalize_email(party)
        ids = sa.select(parties.c.id).where(parties.c.email == email).scalar_subquery()
        query = query.where(sa.or_(orders.c.buyer_id == ids, orders.c.seller_id == ids))
    async with read_tx(engine) as conn:
        rows = (await conn.execute(query)).all()
    return [_view(r, relay_domain) for r in rows]


async def set_status(
    engine: AsyncEngine, relay_domain: str, order_id: str, status: str
) -> OrderView:
    """Close or reopen. A closed order's aliases answer like unknown ones."""
    async with write_tx(engine) as conn:
        result = await conn.execute(
            orders.update()
            .where(orders.c.id == order_id)
            .values(status=status, closed_at=utcnow() if status == "closed" else None)
        )
        if result.rowcount == 0:
            raise OrderNotFound(f"no such order: {order_id}")
        view = await _load(conn, relay_domain, order_id)
    assert view is not None
    return view


async def add_sender(engine: AsyncEngine, party: str, sender: str) -> None:
    """Authorise another From address for a party (a seller's orders@ mailbox)."""
    party = normalize_email(party)
    sender, given = parse_email(sender)
    async with write_tx(engine) as conn:
        row = (await conn.execute(sa.select(parties.c.id).where(parties.c.email == party))).first()
        if row is None:
            raise OrderNotFound(f"no such party: {party}")
        present = await conn.execute(
            sa.select(party_senders.c.id).where(
                party_senders.c.party_id == row.id, party_senders.c.email == sender
            )
        )
        if present.first() is None:
            await conn.execute(
                party_senders.insert().values(
                    party_id=row.id, email=sender, registered_email=given, created_at=utcnow()
                )
            )


async def set_party(engine: AsyncEngine, party: str, *, allow_spf_only: bool) -> None:
    """Per-party authentication relaxation: a domain without DKIM may pass on SPF alone."""
    party = normalize_email(party)
    async with write_tx(engine) as conn:
        result = await conn.execute(
            parties.update().where(parties.c.email == party).values(allow_spf_only=allow_spf_only)
        )
        if result.rowcount == 0:
            raise OrderNotFound(f"no such party: {party}")


async def remove_sender(engine: AsyncEngine, party: str, sender: str) -> None:
    party, sender = normalize_email(party), normalize_email(sender)
    async with write_tx(engine) as conn:
        ids = sa.select(parties.c.id).where(parties.c.email == party).scalar_subquery()
        result = await conn.execute(
            party_senders.delete().where(
                party_senders.c.party_id == ids, party_senders.c.email == sender
            )
        )
        if result.rowcount == 0:
            raise OrderNotFound(f"{sender} is not an authorised sender of {party}")


async def list_senders(engine: AsyncEngine, party: str) -> list[str]:
    party = normalize_email(party)
    async with read_tx(engine) as conn:
        rows = await conn.execute(
            sa.select(_shown(party_senders.c.email).label("email"))
            .join(parties, parties.c.id == party_senders.c.party_id)
            .where(parties.c.email == party)
            .order_by(party_senders.c.email)
        )
        return [r.email for r in rows]
