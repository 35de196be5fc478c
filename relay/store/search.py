"""Full-text search over the archive: subject plus decoded body text.

SQL cannot decode MIME, so the text is extracted in Python into ``archive_text`` (one row
per archive record, insert-only). The database then indexes it by itself: on SQLite an
FTS5 table with ``archive_text`` as its external content, fed by an AFTER INSERT trigger;
on PostgreSQL a generated ``tsvector`` column with a GIN index. Both are created by
migration 0002, so nothing in the write path has to know which engine it talks to.

Two ways a record gets its text row, both idempotent (INSERT OR IGNORE / ON CONFLICT DO
NOTHING, so they can race without failing a commit):

- ``index_many(conn, ids, records)`` in the archive's own write transaction
  (``relay.store.archive.append`` calls it), so a committed record is searchable at once;
- ``catch_up(engine)`` for records written any other way (the bench's bulk load, rows
  from before migration 0002 are backfilled by the migration itself), which searches and
  reports call first. It is a cheap max-id comparison when up to date.

Extraction reads at most ``MAX_SCAN`` bytes of a message: it runs under the hash-chain
lock, and a 40 MB attachment must not stall every other commit. Text parts come first in
practically every message, so the bound costs nothing in recall.

The ``simple`` text configuration and FTS5's ``unicode61`` tokenizer are language-neutral
(the archive mixes en/de/fr/es/it/ja), at the price of no stemming; CJK text without
spaces is indexed as long runs, so Japanese matches whole runs only.
"""

from __future__ import annotations

import email.parser
import email.policy
import math
import re
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from relay.core.errors import QueryError as QueryError
from relay.core.values import MAX_TEXT, TEXT_SCAN, readable_text, text_parts
from relay.db import read_tx, write_tx
from relay.mail.autoreply import is_automatic
from relay.mail.limits import StructureLimits
from relay.mail.limits import check as check_structure
from relay.store.tables import archive

MAX_SCAN = TEXT_SCAN  # bytes of a message parsed for its text (relay.core.values)
TS_CONFIG = "simple"
_LIMITS = StructureLimits()  # the defaults: search text never parses more than intake allows
_HEADERS = email.parser.BytesParser(policy=email.policy.compat32)  # for is_automatic

_meta = sa.MetaData()  # not relay.store.tables's: this table belongs to migration 0002
archive_text = sa.Table(
    "archive_text",
    _meta,
    sa.Column("archive_id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("subject", sa.Text, nullable=False, server_default=""),
    sa.Column("body_text", sa.Text, nullable=False, server_default=""),
    sa.Column("automatic", sa.Boolean, nullable=False, server_default=sa.false()),
)

_WORD = re.compile(r"[^\W_]+\*?")
_TERM = re.compile(r'"([^"]*)"|(\S+)')


def extract(raw: bytes) -> tuple[str, bool]:
    """(readable text, automatic reply?) of a message as received, for a record that
    comes without its search text (``catch_up``, a notice, a DSN, ops mail).

    The text is the one rule of relay.core.values (``readable_text`` of ``text_parts``:
    the plain parts, else the tag-stripped HTML; attachments not indexed), the same the
    intake path stores from its Message. Never raises: a message the parser chokes on is
    still archived and still findable by subject.
    """
    head = raw[:MAX_SCAN]
    if check_structure(head, _LIMITS) is not None:  # parsing it would cost seconds
        return "", False
    try:  # the header section only: the body is read once, by text_parts
        headers = _HEADERS.parsebytes(head, headersonly=True)
        automatic = is_automatic(headers)
    except Exception:  # indexing must never fail an archive commit
        return "", False
    return readable_text(text_parts(head), MAX_TEXT), automatic


def text_row(
    archive_id: int, subject: str, raw: bytes, extracted: tuple[str, bool] | None = None
) -> dict[str, Any]:
    """The ``archive_text`` row of one archived message."""
    body, automatic = extracted if extracted is not None else extract(raw)
    clean = {"subject": subject.replace("\x00", " "), "body_text": body.replace("\x00", " ")}
    return {"archive_id": archive_id, **clean, "automatic": automatic}


_COLUMNS = ("archive_id", "subject", "body_text", "automatic")
# One statement whatever the number of rows, sent to the driver as text: SQLAlchemy's
# compile of a multi-row VALUES cost more than the insert itself (1.8 s for 2,000 rows),
# and this runs under the chain lock. PostgreSQL gets arrays (prepared once by asyncpg),
# SQLite an executemany.
_PG_INSERT = (
    "INSERT INTO archive_text (archive_id, subject, body_text, automatic) "
    "SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::boolean[]) "
    "ON CONFLICT DO NOTHING"
)
_SQLITE_INSERT = (
    "INSERT OR IGNORE INTO archive_text (archive_id, subject, body_text, automatic) "
    "VALUES (?, ?, ?, ?)"
)


async def _insert(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    if conn.dialect.name == "sqlite":
        await conn.exec_driver_sql(_SQLITE_INSERT, [tuple(r[c] for c in _COLUMNS) for r in rows])
        return
    await conn.exec_driver_sql(_PG_INSERT, tuple([r[c] for r in rows] for c in _COLUMNS))


async def index_many(conn: AsyncConnection, ids: list[int], records: list[Any]) -> None:
    """Index records inside the transaction that archives them (``archive.Record``s).

    A caller may extract ahead, outside the chain lock, and pass the result as
    ``record.extra["search"] = extract(raw)``; otherwise it is extracted here.
    """
    rows = [
        text_row(rid, r.subject, r.original, r.extra.get("search") if r.extra else None)
        for rid, r in zip(ids, records, strict=True)
    ]
    await _insert(conn, rows)


async def _behind(conn: AsyncConnection) -> bool:
    top = (await conn.execute(sa.select(sa.func.max(archive.c.id)))).scalar()
    done = (await conn.execute(sa.select(sa.func.max(archive_text.c.archive_id)))).scalar()
    return top is not None and (done is None or done < top)


async def catch_up(engine: AsyncEngine, batch: int = 500) -> int:
    """Index every record newer than the newest indexed one; returns how many.

    Archive ids grow in commit order (the hash chain serialises writers), so "newer than
    the newest indexed" is exactly the set still missing.
    """
    async with read_tx(engine) as conn:
        if not await _behind(conn):
            return 0
    total = 0
    while True:
        async with write_tx(engine) as conn:
            done = (await conn.execute(sa.select(sa.func.max(archive_text.c.archive_id)))).scalar()
            rows = (
                await conn.execute(
                    sa.select(archive.c.id, archive.c.subject, archive.c.original)
                    .where(archive.c.id > (done or 0))
                    .order_by(archive.c.id)
                    .limit(batch)
                )
            ).all()
            if not rows:
                return total
            values = [text_row(r.id, r.subject, bytes(r.original)) for r in rows]
            await _insert(conn, values)
            total += len(values)


BIG_PARTY_RECORDS = 1000  # at most this many records: a party's records are candidates
DRIVE_RATIO = 3  # a step of the text index walk costs about this many candidate records
FEW_RECORDS = 2000  # a verdict filter matching at most this many: its records are candidates


async def party_candidates(
    engine: AsyncEngine,
    seller: str | None,
    buyer: str | None,
    limit: int = 100,
    *,
    ids: bool = True,
) -> list[int] | None:
    """The ids of a seller's (and/or buyer's) records, or None when they are so many that
    a text search should walk the text index newest first and check the party per match
    ("index" plan) rather than keep the matches among them ("candidates"). With ``ids``
    false (SQLite, whose plan selects them itself) only counted: an empty list if few.

    The walk costs about ``limit / share`` steps (share = the party's part of the archive,
    one archive row read each: ~25 ms for a seller with 10 % at 1M); the candidates cost
    the party's size (its ids, read off ix_archive_order, ~3-5 us each). They cross where
    records^2 ~ DRIVE_RATIO * limit * archive size (~12k records for 50 rows at 1M); the
    count stops there, so deciding costs at most that many index entries."""
    from relay.store.archive_search import party_ids

    async with read_tx(engine) as conn:
        top = int((await conn.execute(sa.select(sa.func.max(archive.c.id)))).scalar() or 0)
        threshold = max(BIG_PARTY_RECORDS, math.isqrt(DRIVE_RATIO * max(limit, 1) * top))
        first = party_ids(seller, buyer).limit(threshold + 1)
        if ids and conn.dialect.name == "sqlite":
            found = sorted(int(r[0]) for r in await conn.execute(first))
            return None if len(found) > threshold else found
        if ids:  # one round trip, one row: at most threshold + 1 ids as an array (PostgreSQL;
            # as rows, 12k of them cost ~40 ms of Python each time a big party is asked)
            sub = first.subquery()
            agg = (await conn.execute(sa.select(sa.func.array_agg(sub.c.id)))).scalar() or []
            return None if len(agg) > threshold else sorted(int(i) for i in agg)
        sub = first.subquery()
        n = int((await conn.execute(sa.select(sa.func.count()).select_from(sub))).scalar() or 0)
        return None if n > threshold else []


async def party_is_big(
    engine: AsyncEngine, seller: str | None, buyer: str | None, limit: int = 100
) -> bool:
    return await party_candidates(engine, seller, buyer, limit) is None


async def verdict_is_rare(engine: AsyncEngine, verdict: str) -> bool:
    """Whether few records carry ``verdict`` (counted on ix_archive_verdict, at most
    FEW_RECORDS + 1 index entries): then those records drive a text search, and a common
    word with a verdict nobody has costs nothing instead of a walk over every match
    (the "candidates" plan of ``apply_text``)."""
    sub = (
        sa.select(archive.c.id).where(archive.c.verdict == verdict).limit(FEW_RECORDS + 1)
    ).subquery()
    async with read_tx(engine) as conn:
        n = (await conn.execute(sa.select(sa.func.count()).select_from(sub))).scalar()
    return int(n or 0) <= FEW_RECORDS


async def verdict_ids(engine: AsyncEngine, verdict: str) -> list[int] | None:
    """PostgreSQL's form of ``verdict_is_rare``: the ids of the records carrying
    ``verdict`` when at most FEW_RECORDS do (ix_archive_verdict, index only), to be a text
    search's candidates; None when more do. Without it a common word with a verdict
    nobody has fetched every match of the word, window by window (1-6 s at 1M)."""
    q = sa.select(archive.c.id).where(archive.c.verdict == verdict).limit(FEW_RECORDS + 1)
    async with read_tx(engine) as conn:
        ids = sorted(int(r[0]) for r in await conn.execute(q))
    return None if len(ids) > FEW_RECORDS else ids


def parse_query(text: str) -> list[tuple[list[str], bool]]:
    """Words and "quoted phrases", all required; a trailing ``*`` makes a prefix.

    Returns (words, prefix) per term. One small grammar for both engines, so the CLI and
    the API mean the same thing whichever database is behind them.
    """
    terms: list[tuple[list[str], bool]] = []
    for m in _TERM.finditer(text):
        chunk = m.group(1) if m.group(1) is not None else m.group(2)
        words = [w.lower() for w in _WORD.findall(chunk)]
        if not words:
            continue
        prefix = words[-1].endswith("*")
        words = [w.rstrip("*") for w in words]
        words = [w for w in words if w]
        if words:
            terms.append((words, prefix))
    if not terms:
        raise QueryError("the search text has no searchable words")
    return terms


def fts5_query(text: str) -> str:
    out = []
    for words, prefix in parse_query(text):
        out.append('"' + " ".join(words) + '"' + ("*" if prefix else ""))
    return " AND ".join(out)


def tsquery(text: str) -> str:
    out = []
    for words, prefix in parse_query(text):
        lexemes = [f"'{w}'" for w in words]
        if prefix:
            lexemes[-1] += ":*"
        out.append("(" + " <-> ".join(lexemes) + ")")
    return " & ".join(out)


PLANS = ("probe", "candidates", "index")


def apply_text(
    query: sa.Select[Any],
    text: str,
    dialect: str,
    *,
    plan: str = "index",
    limit: int = 100,
    candidates: list[int] | None = None,
) -> sa.Select[Any]:
    """Restrict an archive query to records matching ``text``, newest first.

    SQLite gets one of three plans, chosen by how many records the other filters leave:

    - ``probe`` (a thread or an alias: tens of records): the archive index drives and each
      record is looked up in FTS5 by rowid. A probe costs ~50-300 us (FTS5 sets up the
      whole expression over every segment), so only for a handful.
    - ``candidates`` (a small or mid-size party, a rare verdict: up to ~10^4 records): the
      filtered ids are collected once off the archive's covering indexes, and FTS5 walks
      the word's matches newest first in C keeping those among them; ``+ 0`` keeps SQLite
      from turning that set back into one probe per id. Costs the candidates plus the
      word's matches (~0.1 us each), stops at ``limit``.
    - ``index`` (no narrowing filter, or a big party): FTS5 drives in descending rowid
      order joined to the archive, so LIMIT stops early even for a common word.

    PostgreSQL joins the GIN-indexed text rows. ``candidates`` (a small party's record
    ids, PostgreSQL only) lets it AND the GIN bitmap with the primary key's instead of
    reading every candidate's text row (and ``window_ids`` does the same with a range).
    """
    if plan not in PLANS:
        raise ValueError(f"unknown text search plan {plan!r}")
    if dialect == "sqlite":
        match = sa.literal_column("archive_fts").op("MATCH")(fts5_query(text))
        fts = sa.table("archive_fts", sa.column("rowid"))
        if plan == "probe":
            probe = (
                sa.select(sa.literal(1)).select_from(fts).where(match, fts.c.rowid == archive.c.id)
            )
            return query.where(probe.exists())
        if plan == "candidates":
            ids = query.with_only_columns(archive.c.id).order_by(None).limit(None)
            hits = (
                sa.select(fts.c.rowid)
                .select_from(fts)
                .where(match, (fts.c.rowid + 0).in_(ids))
                .order_by(fts.c.rowid.desc())
                .limit(limit)
            )
            return (
                sa.select(*query.selected_columns)
                .where(archive.c.id.in_(hits))
                .order_by(archive.c.id.desc())
                .limit(limit)
            )
        return (
            query.join(fts, fts.c.rowid == archive.c.id)
            .where(match)
            .order_by(None)
            .order_by(fts.c.rowid.desc())
        )
    matches = _pg_matches(text)
    if candidates is not None:
        # The ids on the text table, so the GIN bitmap is ANDed with the primary key's
        # and only matching text rows are read; then only those archive rows (see
        # BITMAP_ONLY).
        from sqlalchemy.dialects.postgresql import ARRAY

        wanted = sa.bindparam("candidate_ids", candidates, type_=ARRAY(sa.BigInteger))
        hits = sa.select(archive_text.c.archive_id).where(
            archive_text.c.archive_id == sa.any_(wanted), matches
        )
        return query.where(archive.c.id.in_(hits))
    return query.join(archive_text, archive_text.c.archive_id == archive.c.id).where(matches)


def _pg_matches(text: str) -> sa.ColumnElement[bool]:
    doc: sa.ColumnClause[Any] = sa.literal_column("archive_text.document")
    config: sa.ColumnClause[Any] = sa.literal_column(f"'{TS_CONFIG}'::regconfig")
    return doc.op("@@")(sa.func.to_tsquery(config, tsquery(text)))


async def window_ids(conn: AsyncConnection, text: str, lo: int, hi: int) -> list[int]:
    """PostgreSQL: the ids in [lo, hi) whose text matches, read on bitmap scans only
    (BITMAP_ONLY for this statement): the word's GIN bitmap ANDed with the range's on the
    primary key, so a word matching nothing costs its (empty) posting list and a common
    one the rows of the window that hold it, never a walk over rows that do not."""
    q = sa.select(archive_text.c.archive_id).where(
        _pg_matches(text), archive_text.c.archive_id >= lo, archive_text.c.archive_id < hi
    )
    await conn.exec_driver_sql(BITMAP_ONLY)
    try:
        return [int(r[0]) for r in await conn.execute(q)]
    finally:
        await conn.exec_driver_sql(INDEX_SCANS_BACK)


# PostgreSQL's text search by id windows (relay.store.archive_search._newest_in_windows): the
# first spans this many ids (or 64 x the page size), each next one WINDOW_GROWTH times
# the last, so a word matching nothing costs log2(archive / WINDOW_FIRST) cheap bitmap
# probes and a common word is answered from the first window.
WINDOW_FIRST = 16_384
WINDOW_GROWTH = 2

# PostgreSQL's cost model takes checking a row through the heap as cheap (random_page_cost
# 4), so with the ids at hand it walks them and reads every candidate's text row; cold,
# that is 1.6-2.4 ms a row here (450 rows: 0.7-1.1 s). Without plain index scans it ANDs
# the GIN bitmap with the primary key's and reads only the rows that match (tens of ms).
BITMAP_ONLY = "SET LOCAL enable_indexscan = off"
INDEX_SCANS_BACK = "SET LOCAL enable_indexscan TO DEFAULT"
# asyncpg prepares every statement; after five executions PostgreSQL may switch a
# prepared statement to a generic plan, made without the values: the search text's
# selectivity, the window's bounds and the party's id unknown, so the same search went
# from 11 ms to 90-190 ms once the cached plan turned generic. A search is planned for
# its values each time (~1 ms).
CUSTOM_PLANS = "SET LOCAL plan_cache_mode = force_custom_plan"
# A search returns a page; parallel workers cost their start-up (ms each on a busy host)
# for bitmap heap scans of a few thousand rows.
NO_PARALLEL = "SET LOCAL max_parallel_workers_per_gather = 0"
