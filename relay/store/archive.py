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
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

if TYPE_CHECKING:  # the extension imports the ORM: not at start-up of a CLI read
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from relay.core.values import clean_text
from relay.db import read_tx
from relay.store.archive_search import (
    SearchFilter as SearchFilter,
)
from relay.store.archive_search import (
    party_ids as party_ids,
)
from relay.store.archive_search import (
    search as search,
)
from relay.store.archive_search import (
    search_query as search_query,
)
from relay.store.tables import archive, delivery_events

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
