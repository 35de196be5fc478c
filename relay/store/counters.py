"""Shared rate counters: ``rate_counters(scope, key, window_start, value)``.

One row per counted thing and fixed window. Windows are aligned to the epoch (a minute
starts at a multiple of 60 s, a day at UTC midnight), so every relay process and host
computes the same ``window_start`` without talking to the others; a lifetime counter uses
``window_start = 0``. The counters live in the database, so a restart or a second MX host
neither resets nor doubles them.

``charge`` is check-and-bump for a batch of submissions in the caller's transaction. It is
exact only when every charging transaction is serialised: the relay calls it under the
archive's hash-chain lock (relay.commit.lock_chain), which every group commit takes
anyway, so counting costs one SELECT and one upsert per group, not per message. The
upsert itself is atomic (``ON CONFLICT ... DO UPDATE SET value = value + excluded``) on
SQLite and PostgreSQL, so a counter bumped outside the lock is never lost either.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from relay.db.schema import metadata

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
    keys = {k for _, k, _ in wanted}
    windows = {w for _, _, w in wanted}  # a handful (this minute, hour, day; lifetime)
    rows = await conn.execute(
        sa.select(
            rate_counters.c.scope, rate_counters.c.key, rate_counters.c.window_start,
            rate_counters.c.value,
        ).where(rate_counters.c.key.in_(keys), rate_counters.c.window_start.in_(windows))
    )  # fmt: skip
    found = {(r.scope, r.key, r.window_start): int(r.value) for r in rows}
    return {i: found.get(i, 0) for i in wanted}


async def bump(conn: AsyncConnection, deltas: dict[tuple[str, str, int], int]) -> None:
    """Add each delta to its counter in one multi-row atomic upsert."""
    rows = [
        {"scope": s, "key": k, "window_start": w, "value": v}
        for (s, k, w), v in sorted(deltas.items())
        if v
    ]
    if not rows:
        return
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(rate_counters).values(rows)
    stmt = stmt.on_conflict_do_update(
        index_elements=["scope", "key", "window_start"],
        set_={"value": rate_counters.c.value + stmt.excluded.value},
    )
    await conn.execute(stmt)


async def charge(
    conn: AsyncConnection, submissions: Sequence[Sequence[Charge]]
) -> list[Charge | None]:
    """Check and bump, in order: a submission whose charges all fit is counted; one that
    would take any counter past its limit is not counted at all, and its first offending
    charge is returned in its place (None for the counted ones).

    Serialise callers (see the module docstring) for the limits to be exact.
    """
    current = await read(conn, (c.ident for sub in submissions for c in sub))
    deltas: dict[tuple[str, str, int], int] = defaultdict(int)
    out: list[Charge | None] = []
    for sub in submissions:
        # one submission may charge one counter several times (several recipients)
        wanted: dict[tuple[str, str, int], int] = defaultdict(int)
        for c in sub:
            wanted[c.ident] += c.amount
        over = next(
            (
                c for c in sub
                if c.limit > 0 and current[c.ident] + deltas[c.ident] + wanted[c.ident] > c.limit
            ),
            None,
        )  # fmt: skip
        out.append(over)
        if over is None:
            for ident, amount in wanted.items():
                deltas[ident] += amount
    await bump(conn, deltas)
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
