"""The permanent archive: append-only records chained by hash.

Each record's hash covers the previous record's hash and every field of the record
(message bytes by their sha256), so removing, reordering or editing a record breaks the
chain from that point on, and ``relay archive verify`` says where. The database triggers
stop honest mistakes; the chain detects the rest.

A message whose sender was never proven to be a party (a stranger, failed authentication,
an intake refusal) is kept *bounded* (``bounded``): its header section and the first
``archive.refused_keep`` bytes of its body, with ``size`` and ``sha256`` of the whole
message and ``truncated`` set; the chain then covers the kept bytes by their own digest.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

if TYPE_CHECKING:  # the extension imports the ORM: not at start-up of a CLI read
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from relay.core.values import clean_text
from relay.db import read_tx
from relay.mail.address import canonical_address
from relay.store.tables import archive, deliveries, delivery_events, orders, parties

GENESIS = "0" * 64
_CHAINED = (
    "created_at", "session_id", "kind", "order_id", "direction", "alias", "mail_from", "rcpt",
    "client_ip", "helo", "from_header", "subject", "message_id", "relay_message_id", "verdict",
    "reason", "findings", "auth", "sha256",
)  # fmt: skip
# Added later (migration 0003i): chained only when set, so older records hash as before.
_SIZED = ("size", "truncated")
# Added later still (migration 0007): relay.core.outcomes.ReasonCode, chained when set.
_CODED = ("reason_code",)
HEADER_KEEP = 1024 * 1024  # a header section longer than this is cut too
# Column widths (relay.store.tables): PostgreSQL refuses a longer value, SQLite would not.
_WIDTH = {
    "session_id": 32, "kind": 10, "order_id": 19, "direction": 16, "alias": 320,
    "mail_from": 320, "rcpt": 320, "client_ip": 64, "helo": 255, "relay_message_id": 200,
    "verdict": 10, "sha256": 64,
}  # fmt: skip


@dataclass(frozen=True)
class Record:
    """One archive row before insertion: what arrived, what (if anything) leaves, why."""

    created_at: datetime
    verdict: str
    original: bytes
    sha256: str
    delivered: bytes | None = None
    session_id: str = ""
    kind: str = "message"
    order_id: str | None = None
    direction: str = ""
    alias: str = ""
    mail_from: str = ""
    rcpt: str = ""
    client_ip: str = ""
    helo: str = ""
    from_header: str = ""
    subject: str = ""
    message_id: str = ""
    relay_message_id: str = ""
    reason: str = ""
    findings: str = "[]"
    auth: str = "{}"
    size: int | None = None  # of the whole message received; None on old records
    truncated: bool = False  # ``original`` is only the start of it (see ``bounded``)
    reason_code: str | None = None  # relay.core.outcomes.ReasonCode; None only before 0007
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        # Text fields come from hostile headers: no NUL (PostgreSQL text cannot hold it)
        # and no lone surrogate (cannot be encoded, hashed or stored). A header must never
        # turn into a 451 loop, so the record itself is total over any input.
        for k in _CHAINED:
            value = getattr(self, k)
            if isinstance(value, str):
                value = clean_text(value)[: _WIDTH.get(k)]  # a too-long value is no 451 either
                object.__setattr__(self, k, str.__str__(value))  # an enum member: its text
        if self.reason_code is not None:
            object.__setattr__(self, "reason_code", str.__str__(self.reason_code))

    def row(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in (*_CHAINED, *_SIZED, *_CODED)}
        d["original"] = self.original
        d["delivered"] = self.delivered
        return d


def bounded(raw: bytes, keep: int) -> bytes:
    """What is kept of a message from a sender not proven to be a party: the header section
    (up to HEADER_KEEP) and the first ``keep`` bytes of the body."""
    from relay.mail.parse import split_message  # imports relay.authn: not for a CLI read

    header, body = split_message(raw)
    if len(header) > HEADER_KEEP:
        return raw[:HEADER_KEEP]
    return raw[: len(raw) - len(body)] + body[:keep]


def chain_hash(prev_hash: str, row: dict[str, Any]) -> str:
    canonical = {k: row[k] for k in _CHAINED}
    canonical["created_at"] = row["created_at"].isoformat()
    delivered = row.get("delivered")
    canonical["delivered_sha256"] = hashlib.sha256(delivered).hexdigest() if delivered else ""
    if row.get("size") is not None:
        canonical["size"] = int(row["size"])
        canonical["truncated"] = bool(row.get("truncated"))
        if canonical["truncated"]:  # ``sha256`` is of the whole; the kept bytes need their own
            canonical["kept_sha256"] = hashlib.sha256(row["original"]).hexdigest()
    if row.get("reason_code") is not None:
        canonical["reason_code"] = str(row["reason_code"])
    blob = json.dumps(canonical, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(f"{prev_hash}\n{blob}".encode()).hexdigest()


@dataclass(frozen=True)
class VerifyResult:
    records: int
    first_bad: int | None
    problem: str

    @property
    def ok(self) -> bool:
        return self.first_bad is None


async def count_records(engine: AsyncEngine) -> int:
    async with read_tx(engine) as conn:
        return int(
            (await conn.execute(sa.select(sa.func.count()).select_from(archive))).scalar() or 0
        )


async def verify(
    engine: AsyncEngine, batch: int = 500, progress: Callable[[int], None] | None = None
) -> VerifyResult:
    """Walk the whole chain in id order, recomputing every hash; ``progress`` is told how
    many records each batch covered (a CLI progress bar)."""
    prev, count, last_id = GENESIS, 0, 0
    cols = [
        archive.c[k]
        for k in (*_CHAINED, *_SIZED, *_CODED, "id", "prev_hash", "hash", "original", "delivered")
    ]
    while True:
        async with read_tx(engine) as conn:
            rows = (
                await conn.execute(
                    sa.select(*cols)
                    .where(archive.c.id > last_id)
                    .order_by(archive.c.id)
                    .limit(batch)
                )
            ).all()
        if not rows:
            return VerifyResult(count, None, "")
        for r in rows:
            m = r._mapping
            if r.prev_hash != prev:
                return VerifyResult(
                    count, r.id, "previous-hash link broken (record missing or reordered)"
                )
            if r.truncated:
                if r.size is None or len(r.original) > r.size:
                    return VerifyResult(count, r.id, "kept bytes longer than the message")
            elif hashlib.sha256(r.original).hexdigest() != r.sha256:
                return VerifyResult(count, r.id, "original bytes do not match their sha256")
            if chain_hash(prev, dict(m)) != r.hash:
                return VerifyResult(count, r.id, "record content does not match its hash")
            prev, count, last_id = r.hash, count + 1, r.id
        if progress is not None:
            progress(len(rows))


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


async def get_record(engine: AsyncEngine, record_id: int) -> dict[str, Any] | None:
    async with read_tx(engine) as conn:
        row = (await conn.execute(sa.select(archive).where(archive.c.id == record_id))).first()
        if row is None:
            return None
        events = await conn.execute(
            sa.select(delivery_events)
            .where(delivery_events.c.archive_id == record_id)
            .order_by(delivery_events.c.id)
        )
        d = dict(row._mapping)
        d["events"] = [
            {"at": e.at.isoformat(), "event": e.event, "code": e.code, "detail": e.detail}
            for e in events
        ]
    return d


@dataclass(frozen=True)
class Exported:
    id: int
    created_at: datetime
    kind: str
    direction: str
    mail_from: str
    data: bytes


async def order_messages(engine: AsyncEngine, order_id: str, part: str) -> list[Exported]:
    """An order's records, oldest first, as received (``original``) or as delivered
    (records that were never delivered have no delivered copy and are left out)."""
    column = archive.c.original if part == "original" else archive.c.delivered
    q = (
        sa.select(
            archive.c.id,
            archive.c.created_at,
            archive.c.kind,
            archive.c.direction,
            archive.c.mail_from,
            column.label("data"),
        )
        .where(archive.c.order_id == order_id, column.is_not(None))
        .order_by(archive.c.id)
    )
    async with read_tx(engine) as conn:
        rows = (await conn.execute(q)).all()
    return [
        Exported(r.id, r.created_at, r.kind, r.direction, r.mail_from, bytes(r.data)) for r in rows
    ]


_FROM_LINE = re.compile(rb"^(>*From )", re.M)


def mbox_entry(msg: Exported) -> bytes:
    """One mboxrd entry: a From_ line, LF line ends, ``>``-quoted From_ lookalikes."""
    sender = msg.mail_from or "MAILER-DAEMON"
    stamp = msg.created_at.strftime("%a %b %d %H:%M:%S %Y")
    body = _FROM_LINE.sub(rb">\1", msg.data.replace(b"\r\n", b"\n"))
    if not body.endswith(b"\n"):
        body += b"\n"
    return f"From {sender} {stamp}\n".encode() + body + b"\n"


async def count_review_requests(conn: AsyncConnection, order_id: str) -> int:
    """Review requests the seller already got through to this order's buyer."""
    rows = await conn.execute(
        sa.select(archive.c.findings).where(
            archive.c.order_id == order_id,
            archive.c.direction == "seller-to-buyer",
            archive.c.verdict.in_(("deliver", "redact")),
            archive.c.findings.contains("review_solicitation"),
        )
    )
    return sum(
        1
        for r in rows
        if any(f.get("kind") == "review_solicitation" for f in json.loads(r.findings))
    )


async def bodies(engine: AsyncEngine, ids: list[int]) -> dict[int, tuple[bytes, bytes | None]]:
    """Both copies of a thread's messages in one query, not one ``get_record`` each."""
    if not ids:
        return {}
    q = sa.select(archive.c.id, archive.c.original, archive.c.delivered)
    async with read_tx(engine) as conn:
        rows = (await conn.execute(q.where(archive.c.id.in_(ids)))).all()
    return {int(r.id): (bytes(r.original), None if r.delivered is None else bytes(r.delivered))
            for r in rows}  # fmt: skip


async def session_record_ids(engine: AsyncEngine, session_id: str) -> list[int]:
    """The records one SMTP (or template) session archived, in chain order."""
    q = sa.select(archive.c.id).where(archive.c.session_id == session_id).order_by(archive.c.id)
    async with read_tx(engine) as conn:
        return [int(r.id) for r in await conn.execute(q)]
