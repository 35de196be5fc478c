"""Group commit: one writer task commits the records of many sessions together.

A session hands its records to the writer and waits; the writer takes everything queued,
writes it in one durable transaction (archive record, message-id mapping and delivery
row together) and only then wakes each session, which only then answers 250. If a group
fails, each submission is retried alone so one bad record cannot fail its neighbours.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import sqlalchemy as sa
import structlog
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from relay import ratelimits
from relay.db import write_tx
from relay.store import archive
from relay.store.counters import Charge
from relay.store.tables import deliveries, message_ids, utcnow

log = structlog.get_logger("relay.store.commit")
CHAIN_LOCK = 0x72656C6179  # "relay": PostgreSQL advisory lock serialising the hash chain


@dataclass(frozen=True)
class Outgoing:
    """The delivery row to queue with a record, and its message-id mapping."""

    mail_from: str
    rcpt: str
    token: str
    notify: bool = True
    author: str = ""
    original_message_id: str = ""


@dataclass(frozen=True)
class Entry:
    record: archive.Record
    outgoing: Outgoing | None = None
    # Rate counters to check and bump under the chain lock (relay.ratelimits.settle).
    charges: tuple[Charge, ...] = ()
    no_reply_needed: bool = False  # a buyer message that needs no answer (relay.store.reports)


async def lock_chain(conn: AsyncConnection) -> None:
    """SQLite's BEGIN IMMEDIATE already serialises writers; PostgreSQL needs a lock."""
    if conn.dialect.name != "sqlite":
        await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(CHAIN_LOCK)))


async def write_entries(
    conn: AsyncConnection, entries: list[Entry], prev: str
) -> tuple[list[int], str]:
    """Archive records, queue their deliveries and map their Message-IDs: three
    multi-row statements however many entries, all in the caller's transaction."""
    ids, prev = await archive.append_many(conn, [e.record for e in entries], prev)
    now = utcnow()
    queued, mapped = [], []
    for record_id, entry in zip(ids, entries, strict=True):
        out = entry.outgoing
        if out is None:
            continue
        queued.append({
            "archive_id": record_id, "token": out.token, "mail_from": out.mail_from,
            "rcpt": out.rcpt, "status": "queued", "attempts": 0, "next_attempt_at": now,
            "notify": out.notify, "created_at": now, "updated_at": now,
        })  # fmt: skip
        if out.author and entry.record.relay_message_id:
            mapped.append({
                "relay_id": entry.record.relay_message_id,
                "original_id": out.original_message_id,
                "order_id": entry.record.order_id or "", "author": out.author,
                "archive_id": record_id, "created_at": now,
            })  # fmt: skip
    if queued:
        await conn.execute(deliveries.insert(), queued)
    if mapped:
        await conn.execute(message_ids.insert(), mapped)
    await ratelimits.after_write(conn, ids, entries)
    return ids, prev


async def commit_now(engine: AsyncEngine, entries: list[Entry]) -> list[int]:
    """One submission in its own transaction (CLI, notices, and the group's fallback)."""
    async with write_tx(engine) as conn:
        await lock_chain(conn)
        settled, (over,) = await ratelimits.settle(conn, [entries])
        ids, _ = await write_entries(conn, settled[0], await archive.last_hash(conn))
    if over is not None:
        raise over
    return ids


class GroupCommitter:
    def __init__(self, engine: AsyncEngine, *, max_group: int = 64) -> None:
        self.engine = engine
        self.max_group = max_group
        self._queue: asyncio.Queue[tuple[list[Entry], asyncio.Future[list[int]]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.committed = asyncio.Event()  # set after each commit: wakes the delivery worker

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="group-commit")

    async def stop(self) -> None:
        """Finish what is queued, then stop."""
        if self._task is None:
            return
        await self._queue.join()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def submit(self, entries: list[Entry]) -> list[int]:
        if self._task is None or self._task.done():
            return await commit_now(self.engine, entries)
        fut: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        await self._queue.put((entries, fut))
        return await fut

    async def _run(self) -> None:
        while True:
            group = [await self._queue.get()]
            while len(group) < self.max_group and not self._queue.empty():
                group.append(self._queue.get_nowait())
            try:
                await self._commit_group(group)
            finally:
                for _ in group:
                    self._queue.task_done()
            self.committed.set()

    async def _commit_group(
        self, group: list[tuple[list[Entry], asyncio.Future[list[int]]]]
    ) -> None:
        try:
            async with write_tx(self.engine) as conn:
                await lock_chain(conn)
                settled, over = await ratelimits.settle(conn, [entries for entries, _ in group])
                flat = [e for entries in settled for e in entries]
                ids, _ = await write_entries(conn, flat, await archive.last_hash(conn))
            results, start = [], 0
            for entries in settled:  # hand each session back its own ids
                results.append(ids[start : start + len(entries)])
                start += len(entries)
        except Exception as err:
            if len(group) == 1:
                log.error("archive.commit_failed", error=type(err).__name__)
                _resolve(group[0][1], exc=err)
                return
            for entries, fut in group:  # isolate the bad submission
                try:
                    _resolve(fut, await commit_now(self.engine, entries))
                except ratelimits.LimitExceeded as over_limit:
                    _resolve(fut, exc=over_limit)
                except Exception as one_err:
                    log.error("archive.commit_failed", error=type(one_err).__name__)
                    _resolve(fut, exc=one_err)
            return
        for (_, fut), ids, limit in zip(group, results, over, strict=True):
            _resolve(fut, ids, exc=limit)  # a submission over a limit: its session answers 4xx


def _resolve(
    fut: asyncio.Future[list[int]], ids: list[int] | None = None, exc: BaseException | None = None
) -> None:
    if fut.done():
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(ids or [])
