"""``relay archive search`` without SQLAlchemy: the store's statements, on the bare driver.

A CLI search spends most of its life starting: importing SQLAlchemy Core costs ~0.27 s of
CPU on a 2-core host before the first statement (and its asyncpg dialect ~0.1 s more, plus
five round trips of dialect set-up and a pre-ping), against 5-50 ms for the search itself.
So the CLI runs the very statements ``relay.store.archive.search`` would send (same text,
same plan choices, same order of round trips; ``tests/api/test_cli_quick_search.py``
compares the two over every filter and plan on both engines) through ``sqlite3`` or
``asyncpg`` directly.

Anything out of the ordinary returns None and the CLI takes the store's path, which then
does what it always did and words any error: a URL with options, a database file that
does not exist, a connection refused, no relay schema, records not yet in the text index
(``catch_up`` writes them), an address or a search text the store refuses. Only a search
past ``archive.search_timeout`` is answered here (StatementTimeout, as the store raises
it), so a slow search is not run twice.

The constants below mirror ``relay.store.search``'s (a test keeps them equal).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from relay.cli import quick_sql  # constants read at call time: tests patch them there
from relay.cli.quick_sql import (
    BITMAP_ONLY,
    CUSTOM_PLANS,
    INDEX_SCANS_BACK,
    NO_PARALLEL,
    POSTGRES,
    SQLITE,
    Fallback,
    Sql,
    deliveries_query,
    email_key,
    party_ids_sql,
    party_search,
    party_threshold,
    pg_matches,
    postgres_query,
    shape_rows,
    sqlite_query,
)
from relay.core.errors import StatementTimeout

# -- SQLite -------------------------------------------------------------------------------


def _sqlite_path(url: str) -> str | None:
    path = url[len(SQLITE) :]
    if not path or path == ":memory:" or any(c in path for c in "?#%~"):
        return None
    return path if Path(path).is_file() else None


def search_sqlite(path: str, f: dict[str, Any], timeout: float) -> list[dict[str, Any]]:
    """relay.store.archive.search on SQLite, the engine's pragmas as relay.db.engine sets
    them; ``timeout`` bounds the search block as ``time_limit`` does (a progress handler
    instead of a timer's interrupt(): same error, no thread)."""
    import sqlite3
    import time

    try:
        conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=30, isolation_level=None)
    except sqlite3.Error:
        raise Fallback("cannot open") from None
    try:
        for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON",
                       "busy_timeout=30000"):  # fmt: skip
            conn.execute(f"PRAGMA {pragma}")

        def one(sql: str, params: list[Any] | tuple[Any, ...] = ()) -> Any:
            row = conn.execute(sql, params).fetchone()
            return None if row is None else row[0]

        def read(fn: Callable[[], Any]) -> Any:
            conn.execute("BEGIN")
            try:
                return fn()
            finally:
                conn.execute("COMMIT")

        def schema() -> Any:
            found = one("SELECT name FROM sqlite_master WHERE type = 'table' AND "
                        "name = 'alembic_version'")  # fmt: skip
            return found and one("SELECT version_num FROM alembic_version")

        try:
            if read(schema) is None:
                raise Fallback("no relay schema")
        except sqlite3.Error:
            raise Fallback("not a relay database") from None
        limit, text = int(f["limit"]), f.get("text")
        big = False
        if party_search(f):

            def count_party() -> int:
                top = int(one("SELECT max(archive.id) AS max_1 FROM archive") or 0)
                threshold = party_threshold(limit, top)
                s = Sql(False)
                ids = party_ids_sql(s, f, threshold)
                n = int(one(f"SELECT count(*) AS count_1 FROM ({ids}) AS anon_1", s.params) or 0)
                return n - threshold

            big = read(count_party) > 0
        rare = False
        if text and f.get("verdict"):
            sub = "SELECT archive.id AS id FROM archive WHERE archive.verdict = ? LIMIT ? OFFSET ?"
            n = read(lambda: one(f"SELECT count(*) AS count_1 FROM ({sub}) AS anon_1",
                                 (f["verdict"], quick_sql.FEW_RECORDS + 1, 0)))  # fmt: skip
            rare = int(n or 0) <= quick_sql.FEW_RECORDS
        if text:

            def behind() -> bool:
                top = one("SELECT max(archive.id) AS max_1 FROM archive")
                done = one("SELECT max(archive_text.archive_id) AS max_1 FROM archive_text")
                return top is not None and (done is None or done < top)

            if read(behind):
                raise Fallback("records not yet indexed: the store's catch_up indexes them")
        if f.get("order_id") or f.get("alias"):
            plan = "probe"
        elif ((f.get("seller") or f.get("buyer")) and not big) or rare:
            plan = "candidates"
        else:
            plan = "index"
        sql, params = sqlite_query(f, plan)
        deadline = time.monotonic() + timeout if timeout > 0 else None
        if deadline is not None:
            conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 1000)

        def block() -> tuple[list[Any], list[Any]]:
            rows = conn.execute(sql, params).fetchall()
            ids = [r[0] for r in rows]
            states = conn.execute(*deliveries_query(False, ids)).fetchall() if ids else []
            return rows, states

        try:
            rows, states = read(block)
        except sqlite3.OperationalError as err:
            if deadline is not None and "interrupted" in str(err):
                raise StatementTimeout(timeout) from None
            raise Fallback(str(err)) from None
        finally:
            conn.set_progress_handler(None, 0)
        return shape_rows(rows, states)
    finally:
        try:  # as the engine's connections do on closing (relay.db.engine)
            conn.execute("PRAGMA analysis_limit=1000")
            conn.execute("PRAGMA optimize")
        except sqlite3.Error:
            pass
        conn.close()


# -- PostgreSQL ---------------------------------------------------------------------------


async def search_postgres(dsn: str, f: dict[str, Any], timeout: float) -> list[dict[str, Any]]:
    """relay.store.archive.search on PostgreSQL through asyncpg: the same transactions and
    statements (and SET LOCALs) in the same order, on one connection."""
    import asyncpg

    try:
        conn = await asyncpg.connect(dsn)
    except Exception:
        raise Fallback("cannot connect") from None
    try:
        try:
            async with conn.transaction():
                has = await conn.fetchval("SELECT to_regclass('alembic_version') IS NOT NULL")
                version = has and await conn.fetchval("SELECT version_num FROM alembic_version")
        except asyncpg.PostgresError:
            raise Fallback("not a relay database") from None
        if version is None:
            raise Fallback("no relay schema")
        return await _postgres_search(conn, f, timeout)
    except asyncpg.QueryCanceledError:
        raise StatementTimeout(timeout) from None
    except asyncpg.PostgresError as err:
        raise Fallback(str(err)) from None
    finally:
        await conn.close()


async def _postgres_search(conn: Any, f: dict[str, Any], timeout: float) -> list[dict[str, Any]]:
    limit, text = int(f["limit"]), f.get("text")
    thread = bool(f.get("order_id") or f.get("alias"))
    party = party_search(f)
    big, candidates = False, None
    if party:
        async with conn.transaction():
            top = int(await conn.fetchval("SELECT max(archive.id) AS max_1 FROM archive") or 0)
            threshold = party_threshold(limit, top)
            s = Sql(True)
            sub = party_ids_sql(s, f, threshold)
            agg = await conn.fetchval(
                f"SELECT array_agg(anon_1.id) AS array_agg_1 FROM ({sub}) AS anon_1", *s.params
            )
        agg = agg or []
        candidates = None if len(agg) > threshold else sorted(int(i) for i in agg)
        big = candidates is None
    if text and f.get("verdict") and not thread:
        async with conn.transaction():
            rows = await conn.fetch(
                "SELECT archive.id FROM archive WHERE archive.verdict = $1::VARCHAR "
                "LIMIT $2::INTEGER", f["verdict"], quick_sql.FEW_RECORDS + 1,
            )  # fmt: skip
        few = None if len(rows) > quick_sql.FEW_RECORDS else sorted(int(r[0]) for r in rows)
        if few is not None:
            candidates = few if candidates is None else sorted(set(candidates) & set(few))
    if text:
        async with conn.transaction():
            top = await conn.fetchval("SELECT max(archive.id) AS max_1 FROM archive")
            done = await conn.fetchval(
                "SELECT max(archive_text.archive_id) AS max_1 FROM archive_text"
            )
        if top is not None and (done is None or done < top):
            raise Fallback("records not yet indexed: the store's catch_up indexes them")
    async with conn.transaction():
        if timeout > 0:
            await conn.execute(f"SET LOCAL statement_timeout = {max(1, round(timeout * 1000))}")
        await conn.execute(CUSTOM_PLANS)
        await conn.execute(NO_PARALLEL)
        keys = None
        if big:
            keys = {}
            for role in ("seller", "buyer"):
                if f.get(role):
                    found = await conn.fetchval(
                        "SELECT parties.id FROM parties WHERE parties.email = $1::VARCHAR",
                        email_key(f[role]),
                    )
                    keys[role] = int(found or -1)
        if text and candidates is not None:
            await conn.execute(BITMAP_ONLY)
        if text and candidates is None and not thread:
            rows = await _windows(conn, f, keys)
        else:
            sql, params = postgres_query(
                f, candidates=candidates, keys=keys, party_in_candidates=party and not big
            )
            rows = await conn.fetch(sql, *params)
        ids = [r[0] for r in rows]
        states = []
        if ids:
            sql, params = deliveries_query(True, ids)
            states = await conn.fetch(sql, *params)
    return shape_rows([tuple(r) for r in rows], [tuple(r) for r in states])


async def _windows(conn: Any, f: dict[str, Any], keys: dict[str, int] | None) -> list[Any]:
    """relay.store.archive_search._newest_in_windows."""
    limit = int(f["limit"])
    hi = f.get("before_id")
    if hi is None:
        hi = int(await conn.fetchval("SELECT max(archive.id) AS max_1 FROM archive") or 0) + 1
    width, found = max(quick_sql.WINDOW_FIRST, 64 * limit), list[Any]()
    while hi > 1 and len(found) < limit:
        lo = max(1, hi - width)
        s = Sql(True)
        sql = (
            f"SELECT archive_text.archive_id FROM archive_text WHERE {pg_matches(s, f['text'])} "
            f"AND archive_text.archive_id >= {s.p(lo, 'BIGINT')} "
            f"AND archive_text.archive_id < {s.p(hi, 'BIGINT')}"
        )
        await conn.execute(BITMAP_ONLY)
        try:
            ids = [int(r[0]) for r in await conn.fetch(sql, *s.params)]
        finally:
            await conn.execute(INDEX_SCANS_BACK)
        if ids:
            part = {**f, "text": None, "limit": limit - len(found), "before_id": None}
            q, params = postgres_query(part, keys=keys, window=ids)
            found += await conn.fetch(q, *params)
        hi, width = lo, width * quick_sql.WINDOW_GROWTH
    return found


def search(url: str, f: dict[str, Any], timeout: float) -> list[dict[str, Any]] | None:
    """The store's answer to ``f`` (the CLI's options: SearchFilter's fields), or None
    when the store's path must run instead (see the module's docstring)."""
    try:
        if url.startswith(SQLITE):
            path = _sqlite_path(url)
            return None if path is None else search_sqlite(path, f, timeout)
        if url.startswith(POSTGRES) and "?" not in url:
            import asyncio

            dsn = "postgresql://" + url[len(POSTGRES) :]
            return asyncio.run(search_postgres(dsn, f, timeout))
    except Fallback:
        return None
    return None
