"""The messages a worker is about to send, read from the archive a batch at a time.

A claim hands the worker several rows at once, and each send used to read its own
message in its own read transaction: under load that was a quarter of the delivery
process's CPU (a transaction through SQLAlchemy's async layer costs far more than the
row). ``Loader.get`` queues the request and one task reads every request that arrived
meanwhile with one query (relay.store.queue.messages_bytes), the way the group
committer batches writes. The semantics of a single read are kept per request: a missing
copy is a LookupError for that message alone, and a database error reaches every
request of the batch, whose senders wait the outage out and ask again (worker._load).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from relay.store import queue

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

MAX_BATCH = 64  # messages per read at most (each may be large: the claim bounds them too)


class Loader:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._waiting: dict[int, list[asyncio.Future[bytes]]] = {}
        self._task: asyncio.Task[None] | None = None

    async def get(self, archive_id: int) -> bytes:
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(archive_id, []).append(fut)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="delivery-load")
        return await fut

    async def _run(self) -> None:
        await asyncio.sleep(0)  # the other sends of the same claim ask in this turn
        while self._waiting:
            ids = list(self._waiting)[:MAX_BATCH]
            batch = {i: self._waiting.pop(i) for i in ids}
            try:
                found = await queue.messages_bytes(self.engine, ids)
            except Exception as err:  # each sender decides (worker._load)
                for futs in batch.values():
                    _settle(futs, exc=err)
                continue
            for archive_id, futs in batch.items():
                data = found.get(archive_id)
                if data is None:
                    missing = LookupError(f"archive record {archive_id} has no delivered copy")
                    _settle(futs, exc=missing)
                else:
                    _settle(futs, data)


def _settle(
    futs: list[asyncio.Future[bytes]], data: bytes = b"", exc: BaseException | None = None
) -> None:
    for fut in futs:
        if fut.done():  # its sender was cancelled (stop)
            continue
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(data)
