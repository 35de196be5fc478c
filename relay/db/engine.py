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
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.engine import CursorResult, make_url
from sqlalchemy.exc import DBAPIError

from relay.core.errors import StatementTimeout as StatementTimeout

if TYPE_CHECKING:  # imported when needed: the extension imports the ORM (relay.db.lite)
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"


def inserted_id(result: CursorResult[Any]) -> int:
    """The integer primary key a single-row INSERT just made (SQLAlchemy types it as
    optional: it is None only for statements that are not an INSERT)."""
    key = result.inserted_primary_key
    if key is None:
        raise RuntimeError("the statement inserted no row")
    return int(key[0])


def create_engine(url: str, *, pool_size: int = 10, lite: bool = False) -> AsyncEngine:
    """An AsyncEngine; ``lite`` for a short read-only command: the same engine without
    SQLAlchemy's asyncio extension (relay.db.lite), which costs a CLI call ~0.1 s."""
    if lite:
        from relay.db.lite import create_lite_engine as create_async_engine
    else:
        from sqlalchemy.ext.asyncio import create_async_engine
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


_INTERRUPT_AGAIN = 0.005  # seconds between SQLite interrupts once past the limit


def _cancelled(err: DBAPIError) -> bool:
    """PostgreSQL's query_canceled (57014: statement_timeout, or a cancel request)."""
    orig = err.orig
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    cause = getattr(orig, "__cause__", None)
    return code == "57014" or type(cause).__name__ == "QueryCanceledError"


@asynccontextmanager
async def time_limit(conn: AsyncConnection, seconds: float | None) -> AsyncIterator[None]:
    """Have the database cancel what ``conn`` runs in this block after ``seconds``
    (None or 0: no limit), raised as StatementTimeout, so a search whose plan goes wrong
    answers an error instead of holding a connection for minutes.

    PostgreSQL: ``SET LOCAL statement_timeout`` (so inside a transaction, each statement
    of it). SQLite has no statement timeout: a timer calls sqlite3's ``interrupt()``
    (thread-safe, aiosqlite runs it at once), which stops the running statement at its
    next step; the limit covers the whole block.
    """
    if not seconds or seconds <= 0:
        yield
        return
    if conn.dialect.name != "sqlite":
        await conn.exec_driver_sql(f"SET LOCAL statement_timeout = {max(1, round(seconds * 1000))}")
        try:
            yield
        except DBAPIError as err:
            if _cancelled(err):
                raise StatementTimeout(seconds) from None
            raise
        return
    driver = (await conn.get_raw_connection()).driver_connection  # aiosqlite.Connection
    if driver is None:
        raise RuntimeError("the connection is closed")
    loop = asyncio.get_running_loop()
    fired: list[asyncio.Task[None]] = []
    timer: asyncio.TimerHandle | None = None

    def fire() -> None:
        # interrupt() only stops a statement running at that moment (one not yet sent,
        # still being compiled here, is not hit), so past the limit it is sent again
        # every few ms until the block ends.
        nonlocal timer
        fired[:] = [t for t in fired if not t.done()]
        fired.append(loop.create_task(driver.interrupt()))
        timer = loop.call_later(_INTERRUPT_AGAIN, fire)

    timer = loop.call_later(seconds, fire)
    try:
        yield
    except DBAPIError as err:
        if fired and "interrupted" in str(err.orig):
            raise StatementTimeout(seconds) from None
        raise
    finally:
        if timer is not None:
            timer.cancel()
        for task in fired:  # an interrupt not yet sent must not hit a later statement
            task.cancel()
