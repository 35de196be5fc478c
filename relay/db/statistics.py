"""Planner statistics kept fresh by the relay itself, whatever the server's autovacuum does.

The archive's search plans depend on them: at a million records PostgreSQL without
statistics picks plans that walk a big seller's 100,000 records (14 s) or fetch every
text row of a word (0.4 s); with them, tens of milliseconds. A server may run with
``autovacuum = off`` (this project's CI does), or be slow to get to a table that just
took a bulk import, so every long-running relay process checks every few minutes and
analyses the tables that changed by more than autovacuum's own default rule would allow
(``STALE_MIN + STALE_SHARE * rows``). Where autovacuum keeps up, the check finds nothing.
One process at a time does it (an advisory lock); ANALYZE samples 30,000 rows per table
and VACUUM (no FULL) reads a table once; neither blocks a reader or a writer.

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
_LOCK = 0x72656C6179 + 1  # next to relay.store.commit.CHAIN_LOCK

_STALE = sa.text(
    "SELECT relname, n_mod_since_analyze > :least + :share * n_live_tup AS analyse, "
    "n_ins_since_vacuum > :least + :vshare * n_live_tup AS vacuum "
    "FROM pg_stat_user_tables WHERE schemaname = current_schema() ORDER BY relname"
)
VACUUM_SHARE = 0.2  # inserted rows since the last VACUUM (autovacuum's insert rule)


async def analyze_stale(engine: AsyncEngine) -> list[str]:
    """ANALYZE each of this schema's tables whose statistics are stale, and VACUUM those
    that took many inserts (it sets the visibility map, without which PostgreSQL never
    answers from an index alone: a party's record ids would cost a heap read each).
    Returns the tables' names (empty when another process holds the turn, and always on
    SQLite)."""
    if engine.dialect.name != "postgresql":
        return []
    params = {"least": STALE_MIN, "share": STALE_SHARE, "vshare": VACUUM_SHARE}
    async with engine.connect() as conn:
        # VACUUM cannot run inside a transaction block.
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        turn = await conn.execute(sa.select(sa.func.pg_try_advisory_lock(_LOCK)))
        if not turn.scalar():
            return []
        try:
            rows = (await conn.execute(_STALE, params)).all()
            names = []
            for row in rows:
                if not (row.analyse or row.vacuum):
                    continue
                quoted = conn.dialect.identifier_preparer.quote(row.relname)
                verb = "VACUUM (ANALYZE)" if row.vacuum else "ANALYZE"
                await conn.exec_driver_sql(f"{verb} {quoted}")
                names.append(row.relname)
        finally:
            await conn.execute(sa.select(sa.func.pg_advisory_unlock(_LOCK)))
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
