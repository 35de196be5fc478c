"""An engine for read-only CLI commands without SQLAlchemy's asyncio extension.

``sqlalchemy.ext.asyncio`` imports the ORM, about 0.1-0.15 s of CPU before a short
command like ``relay archive search`` has read anything, though the relay uses Core
only. For Core, the extension is a thin layer: it runs the sync Engine's calls in a
greenlet so the async driver (aiosqlite, asyncpg) can be awaited underneath. This module
is that layer, for the part of ``AsyncEngine``/``AsyncConnection`` the store's read
functions use (connect, begin, execute, exec_driver_sql, run_sync,
get_raw_connection, execution_options, dispose), so the same store code serves the
CLI. Long-running processes keep the real AsyncEngine (``relay.db.create_engine``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.util.concurrency import greenlet_spawn

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine


class LiteConnection:
    """``AsyncConnection``'s Core methods over a sync Connection, each call in a greenlet."""

    def __init__(self, sync_connection: Connection) -> None:
        self.sync_connection = sync_connection

    @property
    def dialect(self) -> Dialect:
        return self.sync_connection.dialect

    async def execute(self, statement: Any, parameters: Any = None) -> Any:
        return await greenlet_spawn(self.sync_connection.execute, statement, parameters)

    async def exec_driver_sql(self, statement: str, parameters: Any = None) -> Any:
        return await greenlet_spawn(self.sync_connection.exec_driver_sql, statement, parameters)

    async def scalar(self, statement: Any, parameters: Any = None) -> Any:
        return await greenlet_spawn(self.sync_connection.scalar, statement, parameters)

    async def run_sync(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await greenlet_spawn(fn, self.sync_connection, *args, **kwargs)

    async def get_raw_connection(self) -> Any:
        return await greenlet_spawn(lambda: self.sync_connection.connection)

    async def execution_options(self, **options: Any) -> LiteConnection:
        await greenlet_spawn(self.sync_connection.execution_options, **options)
        return self

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[LiteConnection]:
        tx = await greenlet_spawn(self.sync_connection.begin)
        try:
            yield self
        except BaseException:
            await greenlet_spawn(tx.rollback)
            raise
        await greenlet_spawn(tx.commit)


class LiteEngine:
    """``AsyncEngine``'s ``connect``/``dispose`` over a sync Engine on an async driver."""

    def __init__(self, sync_engine: Engine) -> None:
        self.sync_engine = sync_engine

    @property
    def dialect(self) -> Dialect:
        return self.sync_engine.dialect

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[LiteConnection]:
        conn = await greenlet_spawn(self.sync_engine.connect)
        try:
            yield LiteConnection(conn)
        finally:
            await greenlet_spawn(conn.close)

    async def dispose(self) -> None:
        await greenlet_spawn(self.sync_engine.dispose)


def create_lite_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """A LiteEngine, typed as the AsyncEngine it stands in for (the store's functions
    are annotated with it and use only the methods above). ``_is_async`` is the flag
    ``create_async_engine`` itself passes: an async driver under a sync Engine."""
    engine = sa.create_engine(url, _is_async=True, **kwargs)
    return cast("AsyncEngine", LiteEngine(engine))
