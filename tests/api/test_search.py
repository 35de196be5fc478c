"""Archive search: full text over subject and decoded body, filters, newest first, pages."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest

from relay.db import write_tx
from relay.store import archive, orders
from relay.store import tables as schema
from relay.store.search import QueryError, catch_up, extract, fts5_query, tsquery
from relay.store.tables import utcnow
from tests.helpers import DOMAIN


async def test_text_search_finds_subject_and_decoded_body(engine, order, archive_msg) -> None:
    a = await archive_msg(order, "buyer-to-seller", "Wo ist mein Paket?", "Bitte Rückerstattung\n")
    b = await archive_msg(order, "seller-to-buyer", "Refund issued", "We refunded you.\n")
    c = await archive_msg(order, "buyer-to-seller", "Thanks", "Merci beaucoup, très bien\n")
    find = lambda text, **kw: archive.search(engine, archive.SearchFilter(text=text, **kw))  # noqa: E731
    assert [r["id"] for r in await find("refund")] == [b]
    assert [r["id"] for r in await find("rückerstattung")] == [a]
    assert [r["id"] for r in await find("ruckerstattung")] in ([a], [])  # diacritics: SQLite folds
    assert [r["id"] for r in await find("tres bien")] in ([c], [])
    assert [r["id"] for r in await find('"merci beaucoup"')] == [c]
    assert [r["id"] for r in await find("refun*")] == [b]
    assert await find("refund paket") == []  # all words required
    assert [r["id"] for r in await find("paket")] == [a]  # subject, decoded (RFC 2047 safe)


async def test_filters_and_pagination(engine, order, archive_msg) -> None:
    other = await orders.create_order(
        engine, DOMAIN, "999-0000000-0000001", buyer="bob@b.example", seller="shop@other.example"
    )
    old = utcnow() - timedelta(days=40)
    ids = [await archive_msg(order, "buyer-to-seller", f"refund {i}", "x\n") for i in range(5)]
    o1 = await archive_msg(other, "buyer-to-seller", "refund elsewhere", "x\n", at=old)
    rej = await archive_msg(
        order,
        "seller-to-buyer",
        "call me",
        "x\n",
        verdict="reject",
        findings=[{"kind": "phone_number", "detail": "x"}],
    )
    find = lambda **kw: archive.search(engine, archive.SearchFilter(**kw))  # noqa: E731
    assert [r["id"] for r in await find(seller="SUPPORT@shop.example", text="refund")] == ids[::-1]
    assert [r["id"] for r in await find(buyer="bob@b.example")] == [o1]
    assert [r["id"] for r in await find(alias=other.seller_alias)] == [o1]
    assert [r["id"] for r in await find(finding_kind="phone_number")] == [rej]
    assert await find(finding_kind="promotion") == []
    assert [r["id"] for r in await find(verdict="reject")] == [rej]
    assert [r["id"] for r in await find(until=utcnow() - timedelta(days=1))] == [o1]
    assert o1 not in [r["id"] for r in await find(since=utcnow() - timedelta(days=1))]
    page1 = await find(text="refund", limit=3)
    page2 = await find(text="refund", limit=3, before_id=page1[-1]["id"])
    assert [r["id"] for r in page1 + page2] == [o1, *ids[::-1]]  # newest = last archived


async def test_records_are_indexed_in_their_own_transaction(engine, order, archive_msg) -> None:
    await archive_msg(order, "buyer-to-seller", "Hello", "The parcel never arrived\n")
    assert await catch_up(engine) == 0  # relay.store.archive.append indexed it already
    assert len(await archive.search(engine, archive.SearchFilter(text="parcel"))) == 1


async def test_catch_up_indexes_rows_written_another_way(engine, order) -> None:
    raw = b"Subject: bulk\r\n\r\nloaded without the archive module\r\n"
    row = {
        "created_at": utcnow(),
        "verdict": "deliver",
        "original": raw,
        "sha256": "x",
        "prev_hash": "x",
        "hash": "x",
        "subject": "bulk",
        "order_id": order.id,
    }
    async with write_tx(engine) as conn:
        await conn.execute(schema.archive.insert().values(row))
    assert await archive.search(engine, archive.SearchFilter(order_id=order.id)) != []
    hits = await archive.search(engine, archive.SearchFilter(text="without module"))
    assert [h["subject"] for h in hits] == ["bulk"]
    assert await catch_up(engine) == 0


def test_extraction_is_bounded_for_huge_messages() -> None:
    attachment = b"A" * (8 * 1024 * 1024)
    raw = (
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
        b"Content-Type: text/plain\r\n\r\nsee the attached invoice\r\n--b\r\n"
        b'Content-Type: application/pdf; name="x.pdf"\r\n\r\n' + attachment + b"\r\n--b--\r\n"
    )
    started = time.perf_counter()
    assert extract(raw) == ("see the attached invoice", False)
    assert time.perf_counter() - started < 0.5


def test_extract_prefers_plain_text_and_flags_auto_replies() -> None:
    raw = (
        b"From: a@b.example\r\nAuto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/alternative; boundary="x"\r\n\r\n'
        b"--x\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\nR=C3=BCckerstattung\r\n"
        b"--x\r\nContent-Type: text/html\r\n\r\n<p>ignored</p>\r\n--x--\r\n"
    )
    assert extract(raw) == ("Rückerstattung", True)
    html_only = b"Content-Type: text/html\r\n\r\n<style>p{}</style><p>Hello &amp; bye</p>"
    assert extract(html_only) == ("Hello & bye", False)
    text, _ = extract(b"\xff\xfe garbage")  # undecodable bytes: no exception, words kept
    assert "garbage" in text.split()


def test_query_grammar() -> None:
    assert fts5_query('refund "where is" parc*') == '"refund" AND "where is" AND "parc"*'
    assert tsquery('refund "where is" parc*') == "('refund') & ('where' <-> 'is') & ('parc':*)"
    assert fts5_query("it's O'Brien") == '"it s" AND "o brien"'
    with pytest.raises(QueryError):
        fts5_query(' "" * - ')


async def test_text_extracted_ahead_of_the_commit_is_used(engine, order) -> None:
    import hashlib

    from relay.store.archive import Record
    from relay.store.commit import Entry, commit_now

    raw = b"Subject: s\r\n\r\nbody\r\n"
    record = Record(
        created_at=utcnow(), verdict="deliver", original=raw,
        sha256=hashlib.sha256(raw).hexdigest(), order_id=order.id, subject="s",
        extra={"search": ("precomputed words", True)},
    )  # fmt: skip
    [rid] = await commit_now(engine, [Entry(record)])
    assert [
        h["id"] for h in await archive.search(engine, archive.SearchFilter(text="precomputed"))
    ] == [rid]


async def test_migration_indexes_an_existing_archive(settings) -> None:
    from relay.db import create_engine
    from relay.db.migrate import upgrade

    engine = create_engine(settings.database.url)
    try:
        await upgrade(engine, "0001")
        raw = b"Subject: old\r\nContent-Type: text/plain\r\n\r\narchived before search existed\r\n"
        row = {"created_at": utcnow(), "verdict": "deliver", "original": raw, "sha256": "x",
               "prev_hash": "x", "hash": "x", "subject": "old"}  # fmt: skip
        async with write_tx(engine) as conn:
            await conn.execute(schema.archive.insert().values(row))
        await upgrade(engine)
        assert await catch_up(engine) == 0  # the migration did it
        hits = await archive.search(engine, archive.SearchFilter(text="before search existed"))
        assert [h["subject"] for h in hits] == ["old"]
    finally:
        await engine.dispose()


async def test_a_big_sellers_text_search_lets_the_index_drive(engine, archive_msg, monkeypatch):
    """Past the party-size threshold the text index drives (cost ~ limit / the seller's
    share); below it the party's records are the candidates (cost ~ its size). Every plan
    gives the same rows, newest first, also paged and with a time filter."""
    from relay.store import search

    monkeypatch.setattr(search, "BIG_PARTY_RECORDS", 5)
    monkeypatch.setattr(search, "DRIVE_RATIO", 0)
    views = [
        await orders.create_order(engine, DOMAIN, f"700-0000000-000000{i}",
                                  buyer=f"b{i}@b.example", seller="big@shop.example")
        for i in range(5)
    ]  # fmt: skip
    small = await orders.create_order(
        engine, DOMAIN, "701-0000000-0000001", buyer="c@b.example", seller="small@x.example"
    )
    want, want_small = [], []
    for i in range(12):
        view = views[i % 5]
        rid = await archive_msg(view, "buyer-to-seller", f"refund {i}" if i % 2 else "other")
        want += [rid] if i % 2 else []
        if i % 4 == 0:
            want_small.append(await archive_msg(small, "buyer-to-seller", f"refund small {i}"))
    assert await search.party_is_big(engine, "big@shop.example", None)
    assert not await search.party_is_big(engine, "small@x.example", None)
    assert await search.party_candidates(engine, "small@x.example", None) == want_small
    for seller, rows in (("BIG@shop.example", want), ("small@x.example", want_small)):
        for limit in (2, 50):
            f = archive.SearchFilter(text="refund", seller=seller, limit=limit)
            found = [r["id"] for r in await archive.search(engine, f)]
            assert found == rows[::-1][:limit]
            older = archive.SearchFilter(
                text="refund", seller=seller, limit=limit, before_id=rows[-1]
            )
            assert [r["id"] for r in await archive.search(engine, older)] == rows[-2::-1][:limit]
            paged = archive.SearchFilter(
                text="refund", seller=seller, limit=limit, before_id=rows[-1]
            )
            async with engine.connect() as conn:
                for big in (True, False):
                    q = archive.search_query(f, engine.dialect.name, big_party=big)
                    assert [r.id for r in (await conn.execute(q)).all()] == found
                    q = archive.search_query(paged, engine.dialect.name, big_party=big)
                    assert [r.id for r in (await conn.execute(q)).all()] == rows[-2::-1][:limit]


async def test_the_relay_keeps_sqlite_statistics_fresh(settings, order, archive_msg) -> None:
    """No manual ANALYZE: connections run PRAGMA optimize as they close (hourly recycle)."""
    import sqlite3

    from relay.db import create_engine

    if not settings.database.url.startswith("sqlite"):
        pytest.skip("PostgreSQL keeps statistics with autovacuum")
    engine = create_engine(settings.database.url)
    for i in range(20):
        await archive_msg(order, "buyer-to-seller", f"refund {i}", "x\n")
    await archive.search(engine, archive.SearchFilter(seller=order.seller, text="refund"))
    await archive.search(engine, archive.SearchFilter(order_id=order.id))
    await engine.dispose()
    path = settings.database.url.split("///", 1)[1]
    with sqlite3.connect(path) as conn:
        tables = {r[0] for r in conn.execute("SELECT tbl FROM sqlite_stat1")}
    assert "archive" in tables, tables


async def test_a_rare_verdict_drives_a_text_search(engine, order, archive_msg, monkeypatch):
    """A common word with a verdict few records have walks those records (ix_archive_verdict),
    not every match of the word; both plans give the same rows."""
    from relay.store import search

    monkeypatch.setattr(search, "FEW_RECORDS", 2)
    ids = [await archive_msg(order, "buyer-to-seller", f"tracking {i}", "x\n") for i in range(6)]
    rej = await archive_msg(order, "seller-to-buyer", "tracking refused", "x\n", verdict="reject")
    assert await search.verdict_is_rare(engine, "reject")
    assert not await search.verdict_is_rare(engine, "deliver")
    for verdict, want in (("reject", [rej]), ("refused", []), ("deliver", ids[::-1])):
        f = archive.SearchFilter(text="tracking", verdict=verdict, limit=50)
        assert [r["id"] for r in await archive.search(engine, f)] == want
        async with engine.connect() as conn:
            for rare in (True, False):
                q = archive.search_query(f, engine.dialect.name, rare_verdict=rare)
                assert [r.id for r in (await conn.execute(q)).all()] == want


async def test_the_relay_analyses_tables_it_changed(engine, monkeypatch) -> None:
    """PostgreSQL statistics without autovacuum (the CI server runs with it off): a relay
    process's check ANALYZEs the tables changed past the threshold, once; SQLite needs
    none (PRAGMA optimize on close)."""
    import asyncio

    from relay.db import statistics

    if engine.dialect.name != "postgresql":
        assert await statistics.analyze_stale(engine) == []
        return
    monkeypatch.setattr(statistics, "STALE_MIN", 100)
    await statistics.analyze_stale(engine)  # whatever the migrations left stale
    now = utcnow()
    async with write_tx(engine) as conn:
        await conn.execute(schema.parties.insert(), [
            {"email": f"p{i}@stats.example", "display_name": "", "created_at": now}
            for i in range(300)
        ])  # fmt: skip
    analysed: list[str] = []
    for _ in range(50):  # the server publishes its change counters within about a second
        analysed = await statistics.analyze_stale(engine)
        if analysed:
            break
        await asyncio.sleep(0.2)
    assert analysed == ["parties"]
    async with engine.connect() as conn:
        last = await conn.exec_driver_sql(
            "SELECT last_analyze FROM pg_stat_user_tables WHERE relname = 'parties'"
        )
        assert last.scalar() is not None
    await asyncio.sleep(1.5)
    assert await statistics.analyze_stale(engine) == []  # fresh now: nothing to do


async def test_time_limit_cancels_a_statement_and_the_connection_goes_on(engine) -> None:
    """A statement past its limit is cancelled by the database itself (PostgreSQL's
    statement_timeout; SQLite's interrupt()) and raised as StatementTimeout, promptly;
    the same connection then answers the next statement."""
    from relay.db.engine import StatementTimeout, time_limit

    slow = (
        "SELECT pg_sleep(30)" if engine.dialect.name == "postgresql" else
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000000000)"
        " SELECT count(*) FROM n"
    )  # fmt: skip
    async with engine.connect() as conn:
        started = time.perf_counter()
        with pytest.raises(StatementTimeout) as caught:
            async with conn.begin(), time_limit(conn, 0.2):
                await conn.exec_driver_sql(slow)
        assert time.perf_counter() - started < 5
        assert caught.value.seconds == 0.2
        async with conn.begin(), time_limit(conn, 5):
            assert (await conn.exec_driver_sql("SELECT 1")).scalar() == 1
        async with conn.begin(), time_limit(conn, 0):  # 0: no limit
            assert (await conn.exec_driver_sql("SELECT 2")).scalar() == 2


# Enough records that a filter no index serves takes SQLite ~50-100 ms, many times the
# 1 ms limit and the 5 ms between interrupts, even on a fast machine.
SLOW_ROWS = 60_000


async def _bulk_archive(engine: Any, order_id: str, n: int, subject: str) -> None:
    """``n`` records written straight into the archive (not the commit path: the chain is
    not what these tests are about), not indexed for text (a search would catch up)."""
    now = utcnow()
    rows = [{"created_at": now, "verdict": "deliver", "original": b"Subject: s\r\n\r\nx\r\n",
             "sha256": "x", "prev_hash": "x", "hash": "x", "subject": subject,
             "order_id": order_id, "direction": "buyer-to-seller"} for _ in range(n)]  # fmt: skip
    async with write_tx(engine) as conn:
        await conn.execute(schema.archive.insert(), rows)


async def test_a_search_past_its_time_limit_is_a_503_with_the_reason(settings, engine, order):
    """archive.search_timeout bounds every search: past it the API answers 503 naming the
    setting (not a hang, not a 500), and the next search works."""
    import httpx

    from relay.api import create_app
    from tests.api.conftest import OPS_TOKEN

    await _bulk_archive(engine, order.id, SLOW_ROWS, "tracking parcel")
    limited = settings.model_copy(update={"archive": settings.archive.model_copy(
        update={"search_timeout": timedelta(milliseconds=1)})})  # fmt: skip
    app = create_app(limited, engine)
    blocker = None
    if engine.dialect.name == "postgresql":  # a lock held elsewhere: waiting on it counts
        blocker = await engine.connect()
        await blocker.begin()
        await blocker.exec_driver_sql("LOCK TABLE archive IN ACCESS EXCLUSIVE MODE")
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {OPS_TOKEN}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=headers) as c:
        # a filter no index serves and nothing matches walks every record
        r = await c.get("/v1/archive", params={"finding_kind": "phone_number"})
        assert r.status_code == 503, r.text
        error = r.json()["error"]
        assert error["code"] == "search_timeout"
        assert "archive.search_timeout" in error["message"] and "cancelled" in error["message"]
        if blocker is not None:
            await blocker.rollback()
            await blocker.close()
        app.state.settings = settings  # 10 s: the same search answers
        r = await c.get("/v1/archive", params={"limit": 3})
        assert r.status_code == 200 and len(r.json()["items"]) == 3


async def test_text_search_by_windows_gives_every_plan_s_rows(engine, archive_msg, monkeypatch):
    """PostgreSQL searches text window by window from the newest id (tiny windows here, so
    a search crosses many): the rows are the same as one pass would give, newest first,
    with filters, pages and a word that matches nothing (which must find nothing, fast)."""
    from relay.store import search

    monkeypatch.setattr(search, "WINDOW_FIRST", 2)
    monkeypatch.setattr(search, "BIG_PARTY_RECORDS", 3)
    monkeypatch.setattr(search, "DRIVE_RATIO", 0)
    big = [await orders.create_order(engine, DOMAIN, f"702-0000000-000000{i}",
                                     buyer=f"w{i}@b.example", seller="wide@shop.example")
           for i in range(3)]  # fmt: skip
    other = await orders.create_order(
        engine, DOMAIN, "703-0000000-0000001", buyer="o@b.example", seller="other@x.example"
    )
    refunds, wide_refunds = [], []
    for i in range(24):
        view = big[i % 3] if i < 8 else other  # the wide seller's records lie far back
        rid = await archive_msg(view, "buyer-to-seller", f"refund {i}" if i % 3 else "hello")
        if i % 3:
            refunds.append(rid)
            wide_refunds += [rid] if i < 8 else []
    find = lambda **kw: archive.search(engine, archive.SearchFilter(**kw))  # noqa: E731
    for limit in (1, 4, 50):
        assert [r["id"] for r in await find(text="refund", limit=limit)] == refunds[::-1][:limit]
        got = await find(text="refund", seller="wide@shop.example", limit=limit)
        assert [r["id"] for r in got] == wide_refunds[::-1][:limit]
    page = await find(text="refund", limit=3, before_id=refunds[-4])
    assert [r["id"] for r in page] == refunds[-5:-8:-1]
    assert await find(text="zzyzx", limit=1) == []
    assert await find(text="refund", verdict="reject") == []
    if engine.dialect.name == "postgresql":  # the windows' text step never walks an index
        async with engine.connect() as conn, conn.begin():
            assert await search.window_ids(conn, "refund", refunds[2], refunds[5]) == (
                refunds[2:5])
            await conn.exec_driver_sql(search.BITMAP_ONLY)
            plan = "\n".join(r[0] for r in await conn.exec_driver_sql(
                "EXPLAIN SELECT archive_id FROM archive_text WHERE document @@ "
                "to_tsquery('simple', 'refund') AND archive_id >= 1 AND archive_id < 9"))
            assert "Index Scan" not in plan.replace("Bitmap Index Scan", ""), plan


async def test_cli_search_reads_through_the_light_engine(settings, order, archive_msg) -> None:
    """`relay archive search` runs on relay.db.lite (no SQLAlchemy asyncio extension) on
    both engines: text, a seller, JSON out; and a search past archive.search_timeout is
    one line naming the setting, exit 1."""
    import json

    from tests.api.conftest import run_cli

    want = [await archive_msg(order, "buyer-to-seller", f"refund {i}") for i in range(3)]
    out = await run_cli(settings, "archive", "search", "--text", "refund", "--seller",
                        order.seller, "--json")  # fmt: skip
    assert out.exit_code == 0, out.output
    assert [r["id"] for r in json.loads(out.output)] == want[::-1]


async def test_cli_search_past_its_time_limit_is_one_line(settings, engine, order) -> None:
    import asyncio

    from click.testing import CliRunner

    from relay.cli import main

    await _bulk_archive(engine, order.id, SLOW_ROWS, "tracking parcel")
    env = {"RELAY_DATABASE__URL": settings.database.url, "RELAY_ARCHIVE__SEARCH_TIMEOUT": "0.001s"}
    blocker = None
    if engine.dialect.name == "postgresql":  # a lock held elsewhere: waiting on it counts
        blocker = await engine.connect()
        await blocker.begin()
        await blocker.exec_driver_sql("LOCK TABLE archive IN ACCESS EXCLUSIVE MODE")
    try:
        args = ["archive", "search", "--finding-kind", "phone_number"]
        out = await asyncio.to_thread(CliRunner().invoke, main, args, env=env)
    finally:
        if blocker is not None:
            await blocker.rollback()
            await blocker.close()
    assert out.exit_code == 1, out.output
    lines = out.output.strip().splitlines()
    assert len(lines) == 1 and "archive.search_timeout (0.001 s)" in lines[0], out.output


def test_the_light_engine_is_what_the_cli_read_path_imports() -> None:
    """The CLI's read path must not import SQLAlchemy's asyncio extension (it imports the
    ORM: ~0.1 s) nor pydantic (the settings: ~0.2 s)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from relay.cli import main\n"
        "from relay.store import archive\n"
        "from relay.db import create_engine\n"
        "create_engine('sqlite+aiosqlite:///:memory:', lite=True)\n"
        "print(sorted(m for m in ('sqlalchemy.ext.asyncio', 'sqlalchemy.orm', 'pydantic')"
        " if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
