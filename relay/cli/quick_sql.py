"""The statements of ``relay archive search`` on the bare driver (relay.cli.quick_search
runs them): the store's search grammar, constants, filters and plans, written as plain SQL
for sqlite3 and asyncpg. They mirror ``relay.store.search`` and
``relay.store.archive_search``; ``tests/api/test_cli_quick_search.py`` keeps them equal.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from typing import Any

from relay.core.errors import RelayError

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
    leaves the CLI's quick search, so outside relay.core.errors' tree
    (tests/core/test_errors.py)."""


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


def email_key(address: str) -> str:
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


def party_ids_sql(s: Sql, f: dict[str, Any], threshold: int) -> str:
    """relay.store.archive.party_ids(...).limit(threshold + 1)."""
    q = "SELECT archive.id AS id FROM orders JOIN archive ON archive.order_id = orders.id"
    conds = []
    for role in ("seller", "buyer"):
        if f.get(role):
            email = s.p(email_key(f[role]))
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
                f"parties.id = orders.{role}_id WHERE parties.email = {s.p(email_key(f[role]))})"
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


def pg_matches(s: Sql, text: str) -> str:
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
            f"archive_text.archive_id = ANY ({ids}) AND {pg_matches(s, text)})"
        )
    elif text:
        join = " JOIN archive_text ON archive_text.archive_id = archive.id"
        w.append(pg_matches(s, text))
    if window is not None:
        w.append(f"archive.id = ANY ({s.p(window, 'BIGINT[]')})")
    q = _SELECT + join + _and(w) + " ORDER BY archive.id DESC" + s.limit(int(f["limit"]))
    return q, s.params


def deliveries_query(postgres: bool, ids: list[int]) -> tuple[str, list[Any]]:
    s = Sql(postgres)
    marks = ", ".join(s.p(i, "BIGINT") for i in ids)
    q = (
        "SELECT deliveries.archive_id, deliveries.id, deliveries.status, deliveries.attempts, "
        f"deliveries.last_code FROM deliveries WHERE deliveries.archive_id IN ({marks})"
    )
    return q, s.params


def shape_rows(rows: list[Any], states: list[Any]) -> list[dict[str, Any]]:
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


def party_threshold(limit: int, top: int) -> int:
    return max(BIG_PARTY_RECORDS, math.isqrt(DRIVE_RATIO * max(limit, 1) * top))


def party_search(f: dict[str, Any]) -> bool:
    return bool(
        f.get("text") and (f.get("seller") or f.get("buyer"))
        and not (f.get("order_id") or f.get("alias"))
    )  # fmt: skip
