"""Engines for both stores, tuned for durability before speed.

SQLite runs in WAL mode with ``synchronous=FULL`` (a committed transaction survives power
loss) and takes the write lock up front (``BEGIN IMMEDIATE``) for writing transactions, so
two writers never deadlock upgrading a read lock. PostgreSQL keeps
``synchronous_commit=on``.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import CursorResult, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"


def inserted_id(result: CursorResult[Any]) -> int:
    """The integer primary key a single-row INSERT just made (SQLAlchemy types it as
    optional: it is None only for statements that are not an INSERT)."""
    key = result.inserted_primary_key
    if key is None:
        raise RuntimeError("the statement inserted no row")
    return int(key[0])


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            Path(database).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
        # Connections are renewed hourly so that each one, closing, refreshes the query
        # planner's statistics (PRAGMA optimize below): the relay keeps them fresh itself.
        engine = create_async_engine(url, connect_args={"timeout": 30}, pool_recycle=3600)
        _install_sqlite_hooks(engine)
        return engine
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        connect_args={"server_settings": {"synchronous_commit": "on"}},
    )


def _install_sqlite_hooks(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control away from the driver so BEGIN is ours to emit.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(sync_engine, "close")
    def _on_close(dbapi_conn: Any, _record: Any) -> None:
        """SQLite's advice for long-lived connections: PRAGMA optimize before closing
        re-analyses the tables this connection's queries would have planned better with
        fresh statistics (bounded by analysis_limit, so it stays cheap on a big archive)."""
        try:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA analysis_limit=1000")
            cur.execute("PRAGMA optimize")
            cur.close()
        except Exception:  # a closing connection must close, whatever the pragma says
            pass

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get("immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


_WRITERS: weakref.WeakKeyDictionary[Any, tuple[asyncio.AbstractEventLoop, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)


def _writer_lock(engine: AsyncEngine) -> asyncio.Lock:
    """One writing transaction at a time per SQLite engine in this process.

    SQLite allows one writer anyway; without this, writers that lose the race poll the
    lock on SQLite's busy timer and some wait seconds while others get through, which
    stalls 250 replies behind queue bookkeeping. Queued on an asyncio lock they take
    turns in order, at no cost to readers (WAL).
    """
    loop = asyncio.get_running_loop()
    entry = _WRITERS.get(engine.sync_engine)
    if entry is None or entry[0] is not loop:
        entry = _WRITERS[engine.sync_engine] = (loop, asyncio.Lock())
    return entry[1]


@asynccontextmanager
async def write_tx(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A writing transaction: BEGIN IMMEDIATE on SQLite, a plain one on PostgreSQL."""
    if engine.dialect.name == "sqlite":
        async with _writer_lock(engine), engine.connect() as conn:
            conn = await conn.execution_options(immediate=True)
            async with conn.begin():
                yield conn
        return
    async with engine.connect() as conn, conn.begin():
        yield conn


@asynccontextmanager
async def read_tx(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    async with engine.connect() as conn, conn.begin():
        yield conn
