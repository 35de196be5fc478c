"""Shared rate counters: ``rate_counters(scope, key, window_start, value)``.

One row per counted thing and fixed window. Windows are aligned to the epoch (a minute
starts at a multiple of 60 s, a day at UTC midnight), so every relay process and host
computes the same ``window_start`` without talking to the others; a lifetime counter uses
``window_start = 0``. The counters live in the database, so a restart or a second MX host
neither resets nor doubles them.

``charge`` is check-and-bump for a batch of submissions in the caller's transaction. It is
exact only when every charging transaction is serialised: the relay calls it under the
archive's hash-chain lock (relay.store.commit.lock_chain), which every group commit takes
anyway, so counting costs one upsert per group (``RETURNING`` the new values), not per
message, and a second statement only when a submission is refused. The upsert itself is
atomic (``ON CONFLICT ... DO UPDATE SET value = value + excluded``) on SQLite and
PostgreSQL, so a counter bumped outside the lock is never lost either.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias

import sqlalchemy as sa
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncConnection

from relay.store.tables import metadata

# exec_driver_sql's result: SQLAlchemy types it CursorResult[Any], which reads as rows of
# one column; the statements here return (scope, key, window_start, value)
Rows: TypeAlias = "CursorResult[*tuple[Any, ...]]"

LIFETIME = 0  # the window of a counter that never resets

rate_counters = sa.Table(
    "rate_counters",
    metadata,
    sa.Column("scope", sa.String(40), primary_key=True),
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("window_start", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("value", sa.BigInteger, nullable=False, server_default="0"),
)
sa.Index("ix_rate_counters_window", rate_counters.c.window_start)


def window_start(at: datetime, seconds: int) -> int:
    """The start (Unix seconds) of the fixed window of ``seconds`` holding ``at``;
    ``seconds == 0`` is the lifetime window."""
    if seconds <= 0:
        return LIFETIME
    t = int(at.timestamp())
    return t - t % seconds


@dataclass(frozen=True)
class Charge:
    """Add ``amount`` to one counter; refuse the submission if that takes the counter past
    ``limit`` (0: count only, never refuse). ``name`` says which limit, for the reply."""

    scope: str
    key: str
    window: int  # window_start
    amount: int = 1
    limit: int = 0
    name: str = ""
    party: str = ""  # whom a refusal is attributed to (relay limits show)

    @property
    def ident(self) -> tuple[str, str, int]:
        return (self.scope, self.key, self.window)


async def read(
    conn: AsyncConnection, idents: Iterable[tuple[str, str, int]]
) -> dict[tuple[str, str, int], int]:
    """Current values of the given counters (absent ones are 0)."""
    wanted = set(idents)
    if not wanted:
        return {}
    keys = sorted({k for _, k, _ in wanted})
    windows = sorted({w for _, _, w in wanted})  # a handful: this minute, hour, day; lifetime
    mark = _marks(conn)
    sql = (
        "SELECT scope, key, window_start, value FROM rate_counters "
        f"WHERE key IN ({mark(0, len(keys))}) "
        f"AND window_start IN ({mark(len(keys), len(windows))})"
    )
    rows: Rows = await conn.exec_driver_sql(sql, (*keys, *windows))
    found = {(r[0], r[1], int(r[2])): int(r[3]) for r in rows}
    return {i: found.get(i, 0) for i in wanted}


# The counting statements go to the driver as they are: under the chain lock every
# waiting session pays for them, and SQLAlchemy's compiling of a multi-row VALUES (or
# its per-row parameter handling in executemany) cost ten times the statement itself.
_UPSERT = (
    "INSERT INTO rate_counters (scope, key, window_start, value) {} "
    "ON CONFLICT (scope, key, window_start) "
    "DO UPDATE SET value = rate_counters.value + excluded.value"
)
_RETURNING = " RETURNING scope, key, window_start, value"
# PostgreSQL: one statement text whatever the row count, so asyncpg prepares it once.
_PG_ROWS = "SELECT * FROM unnest($1::varchar[], $2::varchar[], $3::bigint[], $4::bigint[])"
_CHUNK = 500  # SQLite rows a statement (4 parameters each: far below its limit)


def _marks(conn: AsyncConnection) -> Callable[[int, int], str]:
    """Placeholders ``first .. first+count-1`` in the driver's own style."""
    if conn.dialect.paramstyle == "numeric_dollar":
        return lambda first, count: ", ".join(f"${i + 1}" for i in range(first, first + count))
    return lambda first, count: ", ".join("?" * count)


async def bump(
    conn: AsyncConnection, deltas: dict[tuple[str, str, int], int], *, returning: bool = False
) -> dict[tuple[str, str, int], int]:
    """Add each delta to its counter with one atomic multi-row upsert (rows in key
    order, so two concurrent bumps lock their rows alike); with ``returning``, the new
    values."""
    rows = [(s, k, w, v) for (s, k, w), v in sorted(deltas.items()) if v]
    tail = _RETURNING if returning else ""
    results: list[Rows] = []
    if rows and conn.dialect.name == "postgresql":
        columns = tuple(list(c) for c in zip(*rows, strict=True))
        results.append(await conn.exec_driver_sql(_UPSERT.format(_PG_ROWS) + tail, columns))
    elif rows:
        mark = _marks(conn)
        for start in range(0, len(rows), _CHUNK):
            chunk = rows[start : start + _CHUNK]
            values = "VALUES " + ", ".join(f"({mark(4 * i, 4)})" for i in range(len(chunk)))
            params = tuple(v for r in chunk for v in r)
            results.append(await conn.exec_driver_sql(_UPSERT.format(values) + tail, params))
    if not returning:
        return {}
    return {(r[0], r[1], int(r[2])): int(r[3]) for result in results for r in result}


async def charge(
    conn: AsyncConnection, submissions: Sequence[Sequence[Charge]]
) -> list[Charge | None]:
    """Check and bump, in order: a submission whose charges all fit is counted; one that
    would take any counter past its limit is not counted at all, and its first offending
    charge is returned in its place (None for the counted ones).

    One statement in the usual case: everything is bumped at once and the new values
    come back (``RETURNING``); the values before the group follow, the submissions are
    judged in order against them, and only if one is refused does a second statement
    take its share back. Serialise callers (see the module docstring) for exact limits.
    """
    wanted_by: list[dict[tuple[str, str, int], int]] = []
    total: dict[tuple[str, str, int], int] = defaultdict(int)
    for sub in submissions:
        # one submission may charge one counter several times (several recipients)
        wanted: dict[tuple[str, str, int], int] = defaultdict(int)
        for c in sub:
            wanted[c.ident] += c.amount
        wanted_by.append(wanted)
        for ident, amount in wanted.items():
            total[ident] += amount
    after = await bump(conn, total, returning=True)
    before = {ident: after.get(ident, 0) - amount for ident, amount in total.items()}
    counted: dict[tuple[str, str, int], int] = defaultdict(int)
    undo: dict[tuple[str, str, int], int] = defaultdict(int)
    out: list[Charge | None] = []
    for sub, wanted in zip(submissions, wanted_by, strict=True):
        over = next(
            (
                c for c in sub
                if c.limit > 0 and before[c.ident] + counted[c.ident] + wanted[c.ident] > c.limit
            ),
            None,
        )  # fmt: skip
        out.append(over)
        for ident, amount in wanted.items():
            if over is None:
                counted[ident] += amount
            else:
                undo[ident] -= amount
    if undo:
        await bump(conn, undo)
    return out


async def prune(
    conn: AsyncConnection, before: int, *, scopes_before: dict[str, int] | None = None
) -> int:
    """Drop windowed counters that started before ``before`` (lifetime ones stay), and
    those of the given scopes before their own cut-off (short windows go sooner)."""
    result = await conn.execute(
        sa.delete(rate_counters).where(
            rate_counters.c.window_start > LIFETIME, rate_counters.c.window_start < before
        )
    )
    gone = int(result.rowcount or 0)
    for scope, cut in (scopes_before or {}).items():
        result = await conn.execute(
            sa.delete(rate_counters).where(
                rate_counters.c.scope == scope,
                rate_counters.c.window_start > LIFETIME,
                rate_counters.c.window_start < cut,
            )
        )
        gone += int(result.rowcount or 0)
    return gone


async def values_for(
    conn: AsyncConnection, key: str, scopes: Iterable[str] | None = None
) -> list[tuple[str, int, int]]:
    """(scope, window_start, value) of every counter of ``key``, newest window first."""
    q = sa.select(
        rate_counters.c.scope, rate_counters.c.window_start, rate_counters.c.value
    ).where(rate_counters.c.key == key)
    if scopes is not None:
        q = q.where(rate_counters.c.scope.in_(list(scopes)))
    rows = await conn.execute(q.order_by(rate_counters.c.window_start.desc()))
    return [(r.scope, int(r.window_start), int(r.value)) for r in rows]
