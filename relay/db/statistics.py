"""Planner statistics kept fresh by the relay itself, whatever the server's autovacuum does.

The archive's search plans depend on them: at a million records PostgreSQL without
statistics picks plans that walk a big seller's 100,000 records (14 s) or fetch every
text row of a word (0.4 s); with them, tens of milliseconds. A server may run with
``autovacuum = off`` (this project's CI does), or be slow to get to a table that just
took a bulk import, so every long-running relay process checks every few minutes and
analyses the tables that changed by more than autovacuum's own default rule would allow
(``STALE_MIN + STALE_SHARE * rows``). Where autovacuum keeps up, the check finds nothing.
One process at a time analyses (a transaction-scoped advisory lock); ANALYZE samples
30,000 rows per table, so it costs seconds at most and blocks no reader or writer.

SQLite needs nothing here: its connections run ``PRAGMA optimize`` as they close and the
pool renews them hourly (relay.db.engine).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import sqlalchemy as sa
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

log = structlog.get_logger("relay.db.statistics")

STALE_MIN = 1000  # rows changed since the last ANALYZE, plus
STALE_SHARE = 0.1  # this share of the table (autovacuum's defaults: 50 and 0.1)
EVERY = 300.0  # seconds between checks
_LOCK = 0x72656C6179 + 1  # next to relay.commit.CHAIN_LOCK

_STALE = sa.text(
    "SELECT relname FROM pg_stat_user_tables "
    "WHERE schemaname = current_schema() "
    "AND n_mod_since_analyze > :least + :share * n_live_tup "
    "ORDER BY relname"
)


async def analyze_stale(engine: AsyncEngine) -> list[str]:
    """ANALYZE each of this schema's tables whose statistics are stale; returns their
    names (empty when another process holds the turn, and always on SQLite)."""
    if engine.dialect.name != "postgresql":
        return []
    async with engine.connect() as conn, conn.begin():
        turn = await conn.execute(sa.select(sa.func.pg_try_advisory_xact_lock(_LOCK)))
        if not turn.scalar():
            return []
        params = {"least": STALE_MIN, "share": STALE_SHARE}
        names = [r.relname for r in await conn.execute(_STALE, params)]
        for name in names:
            await conn.exec_driver_sql(f"ANALYZE {conn.dialect.identifier_preparer.quote(name)}")
    if names:
        log.info("db.analyzed", tables=names)
    return names


async def keep_fresh(engine: AsyncEngine, every: float = EVERY) -> None:
    """Check now, then every ``every`` seconds, until cancelled. A failed check (the
    database down) is logged and retried at the next turn, never raised."""
    while True:
        try:
            await analyze_stale(engine)
        except Exception as err:
            log.warning("db.analyze_failed", error=type(err).__name__)
        await asyncio.sleep(every)


@contextlib.asynccontextmanager
async def fresh_statistics(
    engine: AsyncEngine, every: float = EVERY
) -> AsyncIterator[asyncio.Task[None]]:
    """Run ``keep_fresh`` in the background for the duration of the block."""
    task = asyncio.create_task(keep_fresh(engine, every), name="db-statistics")
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
