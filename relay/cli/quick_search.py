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

import json
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from relay.core.errors import RelayError, StatementTimeout

SQLITE = "sqlite+aiosqlite:///"
POSTGRES = "postgresql+asyncpg://"
BIG_PARTY_RECORDS = 1000
DRIVE_RATIO = 3
FEW_RECORDS = 2000
WINDOW_FIRST = 16_384
WINDOW_GROWTH = 2
TS_CONFIG = "simple"
CUSTOM_PLANS = "SET LOCAL plan_cache_mode = force_custom_plan"
NO_PARALLEL = "SET LOCAL max_parallel_workers_per_gather = 0"
BITMAP_ONLY = "SET LOCAL enable_indexscan = off"
INDEX_SCANS_BACK = "SET LOCAL enable_indexscan TO DEFAULT"
COLUMNS = (
    "id", "created_at", "kind", "order_id", "direction", "alias", "mail_from", "rcpt",
    "subject", "verdict", "reason", "findings", "sha256", "relay_message_id",
)  # fmt: skip
_SELECT = "SELECT " + ", ".join(f"archive.{c}" for c in COLUMNS) + " FROM archive"
_WORD = re.compile(r"[^\W_]+\*?")
_TERM = re.compile(r'"([^"]*)"|(\S+)')


class Fallback(Exception):
    """The store's path decides (and words whatever went wrong). Control flow that never
    leaves this module, so outside relay.core.errors' tree (tests/core/test_errors.py)."""


def parse_query(text: str) -> list[tuple[list[str], bool]]:
    """relay.store.search.parse_query; no term at all is the store's QueryError to give."""
    terms: list[tuple[list[str], bool]] = []
    for m in _TERM.finditer(text):
        chunk = m.group(1) if m.group(1) is not None else m.group(2)
        words = [w.lower() for w in _WORD.findall(chunk)]
        if not words:
            continue
        prefix = words[-1].endswith("*")
        words = [w for w in (w.rstrip("*") for w in words) if w]
        if words:
            terms.append((words, prefix))
    if not terms:
        raise Fallback("no searchable words")
    return terms


def fts5_query(text: str) -> str:
    return " AND ".join(
        '"' + " ".join(words) + '"' + ("*" if prefix else "") for words, prefix in parse_query(text)
    )


def tsquery(text: str) -> str:
    out = []
    for words, prefix in parse_query(text):
        lexemes = [f"'{w}'" for w in words]
        if prefix:
            lexemes[-1] += ":*"
        out.append("(" + " <-> ".join(lexemes) + ")")
    return " & ".join(out)


def _email(address: str) -> str:
    from relay.mail.address import canonical_address

    try:
        return canonical_address(address)
    except RelayError:
        raise Fallback("the store refuses this address") from None


class Sql:
    """Placeholders in text order: ``?`` for sqlite3, ``$n::TYPE`` for asyncpg (the casts
    SQLAlchemy writes, so PostgreSQL plans the same statement)."""

    def __init__(self, postgres: bool) -> None:
        self.postgres = postgres
        self.params: list[Any] = []

    def p(self, value: Any, cast: str = "VARCHAR") -> str:
        self.params.append(value)
        return f"${len(self.params)}::{cast}" if self.postgres else "?"

    def limit(self, n: int) -> str:
        if self.postgres:
            return f" LIMIT {self.p(n, 'INTEGER')}"
        return f" LIMIT {self.p(n)} OFFSET {self.p(0)}"

    def when(self, value: datetime) -> str:
        naive = value.astimezone(UTC).replace(tzinfo=None)  # relay.store.tables.UTCDateTime
        if self.postgres:
            return self.p(naive, "TIMESTAMP WITHOUT TIME ZONE")
        return self.p(naive.strftime("%Y-%m-%d %H:%M:%S.%f"))


def _party_ids(s: Sql, f: dict[str, Any], threshold: int) -> str:
    """relay.store.archive.party_ids(...).limit(threshold + 1)."""
    q = "SELECT archive.id AS id FROM orders JOIN archive ON archive.order_id = orders.id"
    conds = []
    for role in ("seller", "buyer"):
        if f.get(role):
            email = s.p(_email(f[role]))
            conds.append(
                f"orders.{role}_id = (SELECT parties.id FROM parties WHERE parties.email = {email})"
            )
    return q + (" WHERE " + " AND ".join(conds) if conds else "") + s.limit(threshold + 1)


def _where(s: Sql, f: dict[str, Any], keys: dict[str, int] | None, *, party: bool) -> list[str]:
    """relay.store.archive.search_query's filters, in its order."""
    w = []
    if f.get("order_id"):
        w.append(f"archive.order_id = {s.p(f['order_id'])}")
    if f.get("party"):
        e = f["party"].strip().lower()
        w.append(
            f"(archive.mail_from = {s.p(e)} OR lower(archive.rcpt) = {s.p(e)} OR "
            f"(lower(archive.from_header) LIKE '%' || {s.p(e)} || '%'))"
        )
    for role in ("seller", "buyer") if party else ():
        if f.get(role) and keys and role in keys:
            w.append(
                "archive.order_id IN (SELECT orders.id FROM orders "
                f"WHERE orders.{role}_id = {int(keys[role])})"
            )
        elif f.get(role):
            w.append(
                "archive.order_id IN (SELECT orders.id FROM orders JOIN parties ON "
                f"parties.id = orders.{role}_id WHERE parties.email = {s.p(_email(f[role]))})"
            )
    if f.get("alias"):
        w.append(f"archive.alias = {s.p(f['alias'].strip().lower())}")
    if f.get("since"):
        w.append(f"archive.created_at >= {s.when(f['since'])}")
    if f.get("until"):
        w.append(f"archive.created_at < {s.when(f['until'])}")
    for column in ("verdict", "direction", "kind"):
        if f.get(column):
            w.append(f"archive.{column} = {s.p(f[column])}")
    if f.get("finding_kind"):
        if s.postgres:
            wanted = s.p(json.dumps([{"kind": f["finding_kind"]}]), "JSONB")
            w.append(f"CAST(archive.findings AS JSONB) @> {wanted}")
        else:
            w.append(
                "EXISTS (SELECT 1 FROM json_each(archive.findings) "
                f"WHERE json_extract(json_each.value, '$.kind') = {s.p(f['finding_kind'])})"
            )
    if f.get("before_id"):
        w.append(f"archive.id < {s.p(int(f['before_id']), 'BIGINT')}")
    return w


def _and(conds: list[str]) -> str:
    return " WHERE " + " AND ".join(conds) if conds else ""


def sqlite_query(f: dict[str, Any], plan: str) -> tuple[str, list[Any]]:
    """The store's SELECT on SQLite (relay.store.search.apply_text's three plans)."""
    s, limit = Sql(False), int(f["limit"])
    if not f.get("text"):
        q = _SELECT + _and(_where(s, f, None, party=True)) + " ORDER BY archive.id DESC"
        return q + s.limit(limit), s.params
    match = fts5_query(f["text"])
    if plan == "probe":
        w = _where(s, f, None, party=True)
        w.append(
            f"(EXISTS (SELECT {s.p(1)} AS anon_1 FROM archive_fts WHERE "
            f"(archive_fts MATCH {s.p(match)}) AND archive.id = archive_fts.rowid))"
        )
        return _SELECT + _and(w) + " ORDER BY archive.id DESC" + s.limit(limit), s.params
    if plan == "candidates":
        head = f"(archive_fts MATCH {s.p(match)}) AND archive_fts.rowid + {s.p(0)} IN "
        ids = "SELECT archive.id FROM archive" + _and(_where(s, f, None, party=True))
        hits = (
            f"SELECT archive_fts.rowid FROM archive_fts WHERE {head}({ids}) "
            f"ORDER BY archive_fts.rowid DESC{s.limit(limit)}"
        )
        q = f"{_SELECT} WHERE archive.id IN ({hits}) ORDER BY archive.id DESC"
        return q + s.limit(limit), s.params
    w = _where(s, f, None, party=True)
    w.append(f"(archive_fts MATCH {s.p(match)})")
    q = _SELECT + " JOIN archive_fts ON archive.id = archive_fts.rowid" + _and(w)
    return q + " ORDER BY archive_fts.rowid DESC" + s.limit(limit), s.params


def _pg_matches(s: Sql, text: str) -> str:
    return (
        f"(archive_text.document @@ to_tsquery('{TS_CONFIG}'::regconfig, {s.p(tsquery(text))}))"
    )


def postgres_query(
    f: dict[str, Any],
    *,
    candidates: list[int] | None = None,
    keys: dict[str, int] | None = None,
    party_in_candidates: bool = False,
    window: list[int] | None = None,
) -> tuple[str, list[Any]]:
    """The store's SELECT on PostgreSQL; ``window``: one id window's matches
    (relay.store.archive_search._newest_in_windows; ``f`` then without text)."""
    s = Sql(True)
    text = f.get("text")
    w = _where(s, f, keys, party=not (party_in_candidates and text))
    join = ""
    if text and candidates is not None:
        ids = s.p(candidates, "BIGINT[]")
        w.append(
            "archive.id IN (SELECT archive_text.archive_id FROM archive_text WHERE "
            f"archive_text.archive_id = ANY ({ids}) AND {_pg_matches(s, text)})"
        )
    elif text:
        join = " JOIN archive_text ON archive_text.archive_id = archive.id"
        w.append(_pg_matches(s, text))
    if window is not None:
        w.append(f"archive.id = ANY ({s.p(window, 'BIGINT[]')})")
    q = _SELECT + join + _and(w) + " ORDER BY archive.id DESC" + s.limit(int(f["limit"]))
    return q, s.params


def _deliveries(postgres: bool, ids: list[int]) -> tuple[str, list[Any]]:
    s = Sql(postgres)
    marks = ", ".join(s.p(i, "BIGINT") for i in ids)
    q = (
        "SELECT deliveries.archive_id, deliveries.id, deliveries.status, deliveries.attempts, "
        f"deliveries.last_code FROM deliveries WHERE deliveries.archive_id IN ({marks})"
    )
    return q, s.params


def _shape(rows: list[Any], states: list[Any]) -> list[dict[str, Any]]:
    """relay.store.archive.search's answer: the columns, then the deliveries."""
    by_record: dict[int, list[dict[str, Any]]] = {}
    for archive_id, id_, status, attempts, last_code in states:
        by_record.setdefault(archive_id, []).append(
            {"id": id_, "status": status, "attempts": attempts, "last_code": last_code}
        )
    out = []
    for r in rows:
        d = dict(zip(COLUMNS, r, strict=True))
        created = d["created_at"]
        if isinstance(created, str):  # SQLite keeps it as text (SQLAlchemy's format)
            created = datetime.fromisoformat(created)
        d["created_at"] = created.replace(tzinfo=UTC).isoformat()
        d["findings"] = json.loads(d["findings"])
        d["deliveries"] = by_record.get(d["id"], [])
        out.append(d)
    return out


def _threshold(limit: int, top: int) -> int:
    return max(BIG_PARTY_RECORDS, math.isqrt(DRIVE_RATIO * max(limit, 1) * top))


def _party_search(f: dict[str, Any]) -> bool:
    return bool(
        f.get("text") and (f.get("seller") or f.get("buyer"))
        and not (f.get("order_id") or f.get("alias"))
    )  # fmt: skip


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
        if _party_search(f):

            def count_party() -> int:
                top = int(one("SELECT max(archive.id) AS max_1 FROM archive") or 0)
                threshold = _threshold(limit, top)
                s = Sql(False)
                ids = _party_ids(s, f, threshold)
                n = int(one(f"SELECT count(*) AS count_1 FROM ({ids}) AS anon_1", s.params) or 0)
                return n - threshold

            big = read(count_party) > 0
        rare = False
        if text and f.get("verdict"):
            sub = "SELECT archive.id AS id FROM archive WHERE archive.verdict = ? LIMIT ? OFFSET ?"
            n = read(lambda: one(f"SELECT count(*) AS count_1 FROM ({sub}) AS anon_1",
                                 (f["verdict"], FEW_RECORDS + 1, 0)))  # fmt: skip
            rare = int(n or 0) <= FEW_RECORDS
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
            states = conn.execute(*_deliveries(False, ids)).fetchall() if ids else []
            return rows, states

        try:
            rows, states = read(block)
        except sqlite3.OperationalError as err:
            if deadline is not None and "interrupted" in str(err):
                raise StatementTimeout(timeout) from None
            raise Fallback(str(err)) from None
        finally:
            conn.set_progress_handler(None, 0)
        return _shape(rows, states)
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
    party = _party_search(f)
    big, candidates = False, None
    if party:
        async with conn.transaction():
            top = int(await conn.fetchval("SELECT max(archive.id) AS max_1 FROM archive") or 0)
            threshold = _threshold(limit, top)
            s = Sql(True)
            sub = _party_ids(s, f, threshold)
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
                "LIMIT $2::INTEGER", f["verdict"], FEW_RECORDS + 1,
            )  # fmt: skip
        few = None if len(rows) > FEW_RECORDS else sorted(int(r[0]) for r in rows)
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
                        _email(f[role]),
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
            sql, params = _deliveries(True, ids)
            states = await conn.fetch(sql, *params)
    return _shape([tuple(r) for r in rows], [tuple(r) for r in states])


async def _windows(conn: Any, f: dict[str, Any], keys: dict[str, int] | None) -> list[Any]:
    """relay.store.archive_search._newest_in_windows."""
    limit = int(f["limit"])
    hi = f.get("before_id")
    if hi is None:
        hi = int(await conn.fetchval("SELECT max(archive.id) AS max_1 FROM archive") or 0) + 1
    width, found = max(WINDOW_FIRST, 64 * limit), list[Any]()
    while hi > 1 and len(found) < limit:
        lo = max(1, hi - width)
        s = Sql(True)
        sql = (
            f"SELECT archive_text.archive_id FROM archive_text WHERE {_pg_matches(s, f['text'])} "
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
        hi, width = lo, width * WINDOW_GROWTH
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
