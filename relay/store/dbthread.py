"""A transaction's statements run as one function in aiosqlite's database thread.

On SQLite every statement SQLAlchemy-async sends costs several thread hand-offs
(aiosqlite runs each call of the driver in its own thread: make a cursor, execute, fetch,
close), each a future, a wake-up of the event loop and a greenlet switch. Under load that
was ~38 % of `relay serve`'s Python time (bench/README.md, H6). The hot statements (the
RCPT lookup, the ledger's appends) instead run here as one plain ``sqlite3`` function
handed to the connection's thread once: one hand-off however many statements.

``run`` uses the very connection, and so the very transaction, that the caller's
``AsyncConnection`` holds (BEGIN IMMEDIATE and COMMIT stay SQLAlchemy's); ``run_pooled``
takes a pool connection for one autocommit statement without an ``AsyncConnection``
around it (measured: the wrapper's checkout cost as much as the RCPT lookup itself); and
values go in and come out through the columns' own SQLAlchemy types (``Insert``, ``Select``), so the
stored bytes are the ones SQLAlchemy would have written. PostgreSQL (asyncpg, no thread)
keeps the ordinary path.

It relies on two aiosqlite internals, ``Connection._execute`` (run a function in the
thread, the way aiosqlite runs its own calls) and ``Connection._conn`` (the ``sqlite3``
connection); tests/core/test_store_dbthread.py pins both.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import cache
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.util import greenlet_spawn

T = TypeVar("T")


async def run(conn: AsyncConnection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """``fn(raw sqlite3 connection)`` in the connection's thread, in its transaction.
    A driver error comes back as SQLAlchemy's (IntegrityError, OperationalError...), as
    it would from ``conn.execute``."""
    raw = await conn.get_raw_connection()
    return await _call(raw.driver_connection, fn)


async def run_pooled(engine: AsyncEngine, fn: Callable[[sqlite3.Connection], T]) -> T:
    """``run`` on a connection of the engine's pool taken for this call alone, for one
    statement in autocommit (SQLite: its own read transaction, one snapshot)."""
    fairy = await engine.raw_connection()
    try:
        return await _call(fairy.driver_connection, fn)
    finally:
        await greenlet_spawn(fairy.close)  # back to the pool (its reset: a rollback)


async def _call(driver: Any, fn: Callable[[sqlite3.Connection], T]) -> T:
    """``fn`` in the thread of ``driver`` (an aiosqlite.Connection)."""
    if driver is None:
        raise RuntimeError("the connection is closed")
    try:
        result: T = await driver._execute(fn, driver._conn)
    except sqlite3.Error as err:
        raise DBAPIError.instance(
            getattr(fn, "__name__", "dbthread"), None, err, sqlite3.Error
        ) from err
    return result


class Insert:
    """``INSERT INTO table (keys...)`` for ``sqlite3``, with each column's bind
    processing from its SQLAlchemy type (UTC datetimes to naive text, booleans...)."""

    def __init__(self, table: sa.Table, keys: Sequence[str], dialect: Dialect, prefix: str = ""):
        self.keys = tuple(keys)
        stmt = table.insert()
        if prefix:
            stmt = stmt.prefix_with(prefix)
        compiled = stmt.compile(dialect=dialect, column_keys=list(self.keys))
        self.sql = str(compiled)
        order = list(compiled.positiontup or ())
        if sorted(order) != sorted(self.keys):
            raise ValueError(f"unexpected parameters {order} for {self.keys}")
        self.keys = tuple(order)
        self._procs = [table.c[k].type.dialect_impl(dialect).bind_processor(dialect)
                       for k in self.keys]  # fmt: skip

    def params(self, row: Mapping[str, Any]) -> tuple[Any, ...]:
        pairs = zip(self.keys, self._procs, strict=True)
        return tuple(p(row[k]) if p is not None else row[k] for k, p in pairs)

    def one(self, db: sqlite3.Connection, row: Mapping[str, Any]) -> int:
        """Insert one row; its rowid (the integer primary key)."""
        rowid = db.execute(self.sql, self.params(row)).lastrowid
        if rowid is None:
            raise RuntimeError("the statement inserted no row")
        return rowid

    def many(self, db: sqlite3.Connection, rows: Iterable[Mapping[str, Any]]) -> None:
        db.executemany(self.sql, [self.params(r) for r in rows])


@cache
def insert(table: sa.Table, keys: tuple[str, ...], dialect: Dialect, prefix: str = "") -> Insert:
    """The ``Insert`` for these columns, built once per table, columns and dialect."""
    return Insert(table, keys, dialect, prefix)


def rows_insert(table: sa.Table, rows: Sequence[Mapping[str, Any]], dialect: Dialect) -> Insert:
    """The ``Insert`` for ``rows`` (all with the keys of the first)."""
    return insert(table, tuple(rows[0]), dialect)


class Select:
    """A SQLAlchemy SELECT compiled once for ``sqlite3``: positional parameters by name,
    result values through each column's result processing, rows as tuples in the
    select's column order (``names`` gives their keys)."""

    def __init__(self, query: sa.Select[Any], dialect: Dialect) -> None:
        compiled = query.compile(dialect=dialect)
        self.sql = str(compiled)
        self.order = list(compiled.positiontup or ())
        # the query's own literals (``nullif(x, '')``, CASE values) are parameters too
        self._fixed = {k: b.effective_value for k, b in compiled.binds.items() if not b.required}
        self.names = tuple(query.selected_columns.keys())
        self._procs = [
            c.type.dialect_impl(dialect).result_processor(dialect, None)
            for c in query.selected_columns
        ]

    def all(self, db: sqlite3.Connection, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        given = self._fixed | dict(params)
        rows = db.execute(self.sql, [given[k] for k in self.order]).fetchall()
        procs = self._procs
        return [tuple(p(v) if p else v for p, v in zip(procs, r, strict=True)) for r in rows]
