"""Searching the archive: ops' filters, the free-text index, and the plans that keep a
search fast at a million records on both engines (relay.store.search holds the text
index; bench/search_bench.py measures each kind).

Split from relay.store.archive, which keeps the records and their chain; that module
re-exports these names for its callers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

if TYPE_CHECKING:  # the extension imports the ORM: not at start-up of a CLI read
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from relay.db import read_tx
from relay.mail.address import canonical_address
from relay.store.tables import archive, deliveries, orders, parties


@dataclass(frozen=True)
class SearchFilter:
    """What ops ask of the archive; every field narrows, None means "any".

    ``party`` matches the sender's or recipient's real address on the record itself;
    ``seller``/``buyer`` match every record of that party's orders (both directions);
    ``alias`` is the alias a record was addressed to. ``before_id`` pages backwards.
    """

    order_id: str | None = None
    party: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    verdict: str | None = None
    direction: str | None = None
    limit: int = 100
    before_id: int | None = None
    text: str | None = None
    seller: str | None = None
    buyer: str | None = None
    alias: str | None = None
    finding_kind: str | None = None
    kind: str | None = None


_LIST_COLS = (
    "id", "created_at", "kind", "order_id", "direction", "alias", "mail_from", "rcpt",
    "subject", "verdict", "reason", "findings", "sha256", "relay_message_id",
)  # fmt: skip


def _orders_of(role: str, email: str) -> Any:
    column = orders.c.seller_id if role == "seller" else orders.c.buyer_id
    return (
        sa.select(orders.c.id)
        .join(parties, parties.c.id == column)
        .where(parties.c.email == canonical_address(email))
    )


def party_ids(seller: str | None, buyer: str | None) -> sa.Select[Any]:
    """Ids of the records of a seller's and/or buyer's orders, order by order, so that a
    LIMIT stops the walk early (``order_id IN (orders)`` would first collect every order:
    10,000 for the largest seller). ix_orders_seller/ix_orders_buyer, then
    ix_archive_order (covering)."""
    q = sa.select(archive.c.id).select_from(
        orders.join(archive, archive.c.order_id == orders.c.id)
    )
    for role, email in (("seller", seller), ("buyer", buyer)):
        if email:
            column = orders.c.seller_id if role == "seller" else orders.c.buyer_id
            party = sa.select(parties.c.id).where(parties.c.email == canonical_address(email))
            q = q.where(column == party.scalar_subquery())
    return q


def _has_finding(kind: str, dialect: str) -> Any:
    if dialect == "sqlite":
        each = sa.text(
            "EXISTS (SELECT 1 FROM json_each(archive.findings) "
            "WHERE json_extract(json_each.value, '$.kind') = :finding_kind)"
        ).bindparams(finding_kind=kind)
        return each
    from sqlalchemy.dialects.postgresql import JSONB  # the dialect costs ~0.1 s to import

    return sa.cast(archive.c.findings, JSONB).contains([{"kind": kind}])


def _party_filter(
    q: sa.Select[Any], f: SearchFilter, party_keys: dict[str, int] | None
) -> sa.Select[Any]:
    for role, who in (("seller", f.seller), ("buyer", f.buyer)):
        if who and party_keys and role in party_keys:
            # The party's id written into the statement: PostgreSQL's statistics then
            # know how many orders this party has (a big seller is among the most common
            # values), where through the join to parties it assumes the average.
            column = orders.c.seller_id if role == "seller" else orders.c.buyer_id
            key = sa.literal(party_keys[role], sa.BigInteger, literal_execute=True)
            q = q.where(archive.c.order_id.in_(sa.select(orders.c.id).where(column == key)))
        elif who:
            q = q.where(archive.c.order_id.in_(_orders_of(role, who)))
    return q


def search_query(
    f: SearchFilter,
    dialect: str,
    *,
    big_party: bool = False,
    rare_verdict: bool = False,
    candidates: list[int] | None = None,
    party_keys: dict[str, int] | None = None,
    party_in_candidates: bool = False,
) -> sa.Select[Any]:
    """The SELECT behind ``search``: newest first, at most ``f.limit`` rows.

    ``big_party``: the seller/buyer filter covers so many records that letting the text
    index drive (and checking the party per match) stops sooner than collecting the
    party's records; ``rare_verdict``: few records carry ``f.verdict``, so they are the
    candidates (relay.store.search.apply_text). ``candidates``: PostgreSQL's form of that plan
    (the party's record ids, or a rare verdict's; ``party_in_candidates``: they are the
    party's, so its filter need not be repeated); ``party_keys``: the seller's/buyer's
    party ids, looked up."""
    q = sa.select(*(archive.c[k] for k in _LIST_COLS)).order_by(archive.c.id.desc()).limit(f.limit)
    if f.order_id:
        q = q.where(archive.c.order_id == f.order_id)
    if f.party:
        email = f.party.strip().lower()
        q = q.where(
            sa.or_(
                archive.c.mail_from == email,
                sa.func.lower(archive.c.rcpt) == email,  # kept as the party registered it
                sa.func.lower(archive.c.from_header).contains(email),
            )
        )
    if not (party_in_candidates and dialect != "sqlite" and f.text):
        q = _party_filter(q, f, party_keys)  # else the party's record ids stand for it
    if f.alias:
        q = q.where(archive.c.alias == f.alias.strip().lower())
    if f.since:
        q = q.where(archive.c.created_at >= f.since)
    if f.until:
        q = q.where(archive.c.created_at < f.until)
    if f.verdict:
        q = q.where(archive.c.verdict == f.verdict)
    if f.direction:
        q = q.where(archive.c.direction == f.direction)
    if f.kind:
        q = q.where(archive.c.kind == f.kind)
    if f.finding_kind:
        q = q.where(_has_finding(f.finding_kind, dialect))
    if f.before_id:
        q = q.where(archive.c.id < f.before_id)
    if f.text:
        from relay.store.search import apply_text

        if f.order_id or f.alias:
            plan = "probe"  # a thread: tens of records
        elif ((f.seller or f.buyer) and not big_party) or rare_verdict:
            plan = "candidates"
        else:
            plan = "index"
        if dialect == "sqlite":
            candidates = None
        q = apply_text(
            q, f.text, dialect, plan=plan, limit=f.limit,
            candidates=candidates,
        )  # fmt: skip
    return q


async def search(
    engine: AsyncEngine, f: SearchFilter, *, timeout: float | None = None
) -> list[dict[str, Any]]:
    """Newest first. A text search first indexes records not yet indexed (relay.store.search).

    On PostgreSQL a text search goes in one of two forms: with a small set of candidates
    (a small party's record ids, a rare verdict's) those ids as an array, searched on
    bitmap scans (relay.store.search.BITMAP_ONLY); otherwise by id windows from the newest
    (``_newest_in_windows``), a big party by its party id written into the statement, so
    the planner sees its size (through the join to parties it assumed an average seller).
    Every search is planned for its own values (relay.store.search.CUSTOM_PLANS).

    ``timeout`` (seconds; the API and CLI pass ``archive.search_timeout``): the database
    cancels the search's statements past it and StatementTimeout is raised
    (relay.db.engine.time_limit), whatever plan the database chose."""
    from relay.db.engine import time_limit
    from relay.store import search as text_search

    big, candidates = False, None
    party = bool(f.text and (f.seller or f.buyer) and not (f.order_id or f.alias))
    if party:
        candidates = await text_search.party_candidates(
            engine, f.seller, f.buyer, f.limit, ids=engine.dialect.name != "sqlite"
        )
        big = candidates is None
    rare = False
    if f.text and f.verdict and engine.dialect.name == "sqlite":
        rare = await text_search.verdict_is_rare(engine, f.verdict)
    elif f.text and f.verdict and not (f.order_id or f.alias):
        few = await text_search.verdict_ids(engine, f.verdict)  # PostgreSQL: as candidates
        if few is not None:
            candidates = few if candidates is None else sorted(set(candidates) & set(few))
    if f.text:
        await text_search.catch_up(engine)
    postgres = engine.dialect.name == "postgresql"
    async with read_tx(engine) as conn, time_limit(conn, timeout):
        keys = None
        if postgres:
            await conn.exec_driver_sql(text_search.CUSTOM_PLANS)
            await conn.exec_driver_sql(text_search.NO_PARALLEL)
        if postgres and big:
            keys = await _party_keys(conn, f)
        if postgres and f.text and candidates is not None:
            await conn.exec_driver_sql(text_search.BITMAP_ONLY)
        if postgres and f.text and candidates is None and not (f.order_id or f.alias):
            rows = await _newest_in_windows(conn, f, keys)
        else:
            q = search_query(
                f, engine.dialect.name, big_party=big, rare_verdict=rare,
                candidates=candidates, party_keys=keys, party_in_candidates=party and not big,
            )  # fmt: skip
            rows = list((await conn.execute(q)).all())
        ids = [r.id for r in rows]
        states = await _delivery_states(conn, ids)
    out = []
    for r in rows:
        d = dict(r._mapping)
        d["created_at"] = d["created_at"].isoformat()
        d["findings"] = json.loads(d["findings"])
        d["deliveries"] = states.get(r.id, [])
        out.append(d)
    return out


async def _newest_in_windows(
    conn: AsyncConnection, f: SearchFilter, keys: dict[str, int] | None
) -> list[Any]:
    """PostgreSQL's text search without a small set of candidates, newest first, by id
    windows growing from the newest (relay.store.search.WINDOW_FIRST, x WINDOW_GROWTH).

    Per window two statements: the ids of the window's matching text rows, on bitmap
    scans only (the word's GIN bitmap ANDed with the window's range of the text table's
    primary key: only rows that match and lie in the window are read;
    relay.store.search.window_ids), then the archive rows among them that pass the other
    filters, newest first (one bitmap scan of those ids, and the party's orders hashed
    once). Walking the text table newest first instead, PostgreSQL's own choice under a
    LIMIT, reads every row until enough match: all 1M for a word that matches nothing
    (3.7 s warm, minutes cold), 88,000 for the largest seller (0.4 s); joining per row
    instead of by id array costs a nested-loop probe each (~25 us). Windows cost the
    matches they hold, at most every match of the word once."""
    from sqlalchemy.dialects.postgresql import ARRAY

    from relay.store.search import WINDOW_FIRST, WINDOW_GROWTH, window_ids

    if not f.text:
        return []
    hi = f.before_id
    if hi is None:
        hi = int((await conn.execute(sa.select(sa.func.max(archive.c.id)))).scalar() or 0) + 1
    width, found = max(WINDOW_FIRST, 64 * f.limit), list[Any]()
    while hi > 1 and len(found) < f.limit:
        lo = max(1, hi - width)
        ids = await window_ids(conn, f.text, lo, hi)
        if ids:
            part = replace(f, text=None, limit=f.limit - len(found), before_id=None)
            wanted = sa.bindparam("window_ids", ids, type_=ARRAY(sa.BigInteger))
            q = search_query(part, "postgresql", party_keys=keys)
            found += (await conn.execute(q.where(archive.c.id == sa.any_(wanted)))).all()
        hi, width = lo, width * WINDOW_GROWTH
    return found


async def _party_keys(conn: AsyncConnection, f: SearchFilter) -> dict[str, int]:
    """The party ids of ``f.seller``/``f.buyer`` (-1 for an unknown address: no orders)."""
    keys = {}
    for role, who in (("seller", f.seller), ("buyer", f.buyer)):
        if who:
            found = await conn.execute(
                sa.select(parties.c.id).where(parties.c.email == canonical_address(who))
            )
            keys[role] = int(found.scalar() or -1)
    return keys


async def _delivery_states(
    conn: AsyncConnection, ids: list[int]
) -> dict[int, list[dict[str, Any]]]:
    if not ids:
        return {}
    rows = await conn.execute(
        sa.select(
            deliveries.c.archive_id,
            deliveries.c.id,
            deliveries.c.status,
            deliveries.c.attempts,
            deliveries.c.last_code,
        ).where(deliveries.c.archive_id.in_(ids))
    )
    out: dict[int, list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(r.archive_id, []).append(
            {"id": r.id, "status": r.status, "attempts": r.attempts, "last_code": r.last_code}
        )
    return out
