"""Group commit: one writer task commits the records of many sessions together.

A session hands its records to the writer and waits; the writer takes everything queued,
writes it in one durable transaction (archive record, message-id mapping and delivery
row together) and only then wakes each session, which only then answers 250. If a group
fails, each submission is retried alone so one bad record cannot fail its neighbours.
The writing itself is relay.store.ledger's (the hash chain's one writer and one lock);
this module only groups, settles the rate counters, and hands each session its ids.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from relay import ratelimits
from relay.store import ledger
from relay.store.ledger import Entry as Entry
from relay.store.ledger import Outgoing as Outgoing

log = structlog.get_logger("relay.store.commit")


async def settle_and_append(
    book: ledger.Ledger, submissions: list[list[Entry]]
) -> tuple[list[list[int]], list[ratelimits.LimitExceeded | None]]:
    """Check and charge the submissions' rate counters, then append what is left, in
    the ledger's transaction (under the chain lock); each submission's ids, in order."""
    settled, over = await ratelimits.settle(book.conn, submissions)
    ids = await book.append([e for entries in settled for e in entries])
    results, start = [], 0
    for entries in settled:  # hand each session back its own ids
        results.append(ids[start : start + len(entries)])
        start += len(entries)
    return results, over


async def commit_now(engine: AsyncEngine, entries: list[Entry]) -> list[int]:
    """One submission in its own transaction (CLI, notices, and the group's fallback)."""
    async with ledger.open(engine) as book:
        (ids,), (over,) = await settle_and_append(book, [entries])
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
            async with ledger.open(self.engine) as book:
                results, over = await settle_and_append(book, [entries for entries, _ in group])
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
