"""Threading across the relay: In-Reply-To and References, mapped for each reader.

Each delivered message has two ids: the author's own and the one we minted. A reader
knows their own messages by their own ids and the other party's by ours; an id the reader
cannot know (or one we never saw) is dropped, since a foreign Message-ID often names the
writer's mail domain.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from relay.core.values import Message
from relay.db import read_tx
from relay.mail.rewrite import message_ids as parse_ids
from relay.store.archive import count_review_requests
from relay.store.tables import message_ids

MAX_REFERENCES = 40


@dataclass(frozen=True)
class Known:
    relay_id: str
    original_id: str
    author: str
    at: datetime | None = None  # when we relayed it (relay.ratelimits: the reply window)


@dataclass(frozen=True)
class ThreadIndex:
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    known: tuple[Known, ...]

    def _find(self, msgid: str) -> Known | None:
        for k in self.known:
            if msgid in (k.relay_id, k.original_id):
                return k
        return None

    def for_reader(self, msgid: str, reader: str) -> str | None:
        k = self._find(msgid)
        if k is None:
            return None
        return k.original_id if k.author == reader else k.relay_id

    def answered_at(self, author: str) -> datetime | None:
        """When the latest message by ``author`` that this one refers to was relayed."""
        times = [
            k.at
            for i in (*self.in_reply_to, *self.references)
            if (k := self._find(i)) is not None and k.author == author and k.at is not None
        ]
        return max(times, default=None)

    def answers(self, author: str) -> bool:
        """Does this message refer to one written by ``author``?"""
        return any(
            k.author == author
            for i in (*self.in_reply_to, *self.references)
            if (k := self._find(i)) is not None
        )


async def load_thread_index(engine: AsyncEngine, order_id: str, message: Message) -> ThreadIndex:
    """The ids ``message`` refers to (the one reading of its header section), and which of
    them the relay carried in this order."""
    irt = tuple(parse_ids(" ".join(message.raw_values("In-Reply-To"))))[:MAX_REFERENCES]
    refs = tuple(parse_ids(" ".join(message.raw_values("References"))))[-MAX_REFERENCES:]
    ids = {i for i in (*irt, *refs) if i}
    if not ids:
        return ThreadIndex(irt, refs, ())
    async with read_tx(engine) as conn:
        rows = await conn.execute(
            sa.select(
                message_ids.c.relay_id, message_ids.c.original_id, message_ids.c.author,
                message_ids.c.created_at,
            )
            .where(message_ids.c.order_id == order_id)
            .where(sa.or_(message_ids.c.relay_id.in_(ids), message_ids.c.original_id.in_(ids)))
        )
        known = tuple(Known(r.relay_id, r.original_id, r.author, r.created_at) for r in rows)
    return ThreadIndex(irt, refs, known)


async def prior_review_requests(engine: AsyncEngine, order_id: str) -> int:
    async with read_tx(engine) as conn:
        return await count_review_requests(conn, order_id)
