"""What a bounce notice may say about the archived message it is about, read in one query.

relay.bounce turns a ``Head`` into its ``Original`` (who to tell, whether the original was
automatic mail); the reading is here, with the other owners of the archive's tables. Only
the header section is loaded (``HEAD_BYTES``): never a 40 MB body for a notice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from relay.db import read_tx
from relay.store.tables import archive, orders

HEAD_BYTES = 65536


@dataclass(frozen=True)
class Head:
    """An archived record's fields a notice reads, and the start of its bytes."""

    order_id: str | None
    alias: str
    subject: str
    created_at: datetime
    from_header: str
    kind: str
    mail_from: str
    message_id: str
    locale: str | None  # the order's buyer locale
    head: bytes  # the first HEAD_BYTES of what arrived


async def head(conn: AsyncConnection, archive_id: int) -> Head | None:
    """In the caller's transaction (a DSN or a refused hold reads it where it writes)."""
    a = archive.c
    locale = (
        sa.select(orders.c.buyer_locale).where(orders.c.id == a.order_id).scalar_subquery()
    )
    row = (
        await conn.execute(
            sa.select(
                a.order_id, a.alias, a.subject, a.created_at, a.from_header, a.kind, a.mail_from,
                a.message_id, locale.label("locale"),
                sa.func.substr(a.original, 1, HEAD_BYTES).label("head"),
            ).where(a.id == archive_id)
        )
    ).first()
    if row is None:
        return None
    return Head(**{**row._mapping, "head": bytes(row.head or b"")})


async def read_head(engine: AsyncEngine, archive_id: int) -> Head | None:
    """``head`` in a read transaction of its own (the delivery worker, before it writes)."""
    async with read_tx(engine) as conn:
        return await head(conn, archive_id)
