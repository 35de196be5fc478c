"""`relay archive search` on the bare driver (relay.cli.quick_search) answers exactly what
the store's search answers, for every filter and plan, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from relay.cli import quick_search as quick
from relay.cli import quick_sql
from relay.db import write_tx
from relay.store import archive, archive_search, orders
from relay.store import search as store_search
from relay.store import tables as schema
from tests.helpers import DOMAIN

FIELDS = ("text", "order_id", "seller", "buyer", "party", "alias", "since", "until",
          "verdict", "direction", "finding_kind", "limit", "before_id")  # fmt: skip


def test_the_mirrored_constants_and_grammar_are_the_store_s() -> None:
    for name in ("BIG_PARTY_RECORDS", "DRIVE_RATIO", "FEW_RECORDS", "WINDOW_FIRST",
                 "WINDOW_GROWTH", "TS_CONFIG", "CUSTOM_PLANS", "NO_PARALLEL", "BITMAP_ONLY",
                 "INDEX_SCANS_BACK"):  # fmt: skip
        assert getattr(quick_sql, name) == getattr(store_search, name), name
    assert quick_sql.COLUMNS == archive_search._LIST_COLS
    for text in ("refund", "Refund  please", '"wo ist" paket*', "ab*c d_e", "Rückerstattung",
                 'x "" y', "a* *", "über-weisung 3"):  # fmt: skip
        assert quick_sql.fts5_query(text) == store_search.fts5_query(text), text
        assert quick_sql.tsquery(text) == store_search.tsquery(text), text
    with pytest.raises(quick_sql.Fallback):
        quick_sql.fts5_query("*** --")
    with pytest.raises(store_search.QueryError):
        store_search.fts5_query("*** --")


def _filter(**given: Any) -> dict[str, Any]:
    return {k: given.get(k, 100 if k == "limit" else None) for k in FIELDS}


async def _quick(url: str, f: dict[str, Any], timeout: float = 10.0) -> list[dict[str, Any]]:
    """The bare-driver search itself (a Fallback fails the test: no silent store path)."""
    if url.startswith(quick_sql.SQLITE):
        path = url[len(quick_sql.SQLITE) :]
        return await asyncio.to_thread(quick.search_sqlite, path, f, timeout)
    return await quick.search_postgres("postgresql://" + url[len(quick_sql.POSTGRES) :], f, timeout)


@pytest.fixture
async def varied(engine: Any, archive_msg: Any) -> dict[str, Any]:
    """Three orders (two of one seller), records of every direction, verdict and age."""
    wide = [await orders.create_order(engine, DOMAIN, f"702-0000000-000000{i}",
                                      buyer=f"w{i}@b.example", seller="wide@shop.example")
            for i in range(2)]  # fmt: skip
    other = await orders.create_order(
        engine, DOMAIN, "703-0000000-0000001", buyer="o@b.example", seller="other@x.example"
    )
    start = datetime.now(UTC) - timedelta(days=30)
    subjects = ["refund please", "tracking number", "hello", "Rückerstattung refund*", "refund"]
    verdicts = ["deliver", "deliver", "redact", "reject", "deliver", "refused"]
    ids = []
    for i in range(30):
        view = (wide[0], wide[1], other)[i % 3] if i >= 6 else wide[i % 2]
        rid = await archive_msg(
            view, ("buyer-to-seller", "seller-to-buyer")[i % 2], subjects[i % 5],
            f"body {i} tracking\n" if i % 4 == 0 else "nothing here\n",
            at=start + timedelta(days=i), verdict=verdicts[i % 6],
            findings=[{"kind": "phone_number", "text": "x"}] if i % 7 == 0 else None,
        )  # fmt: skip
        ids.append(rid)
    now = datetime.now(UTC)
    rows = [{"archive_id": rid, "token": f"t{rid}-{n}", "mail_from": "", "rcpt": f"r{n}@x.example",
             "status": ("queued", "delivered", "failed")[(rid + n) % 3], "attempts": n,
             "next_attempt_at": now, "last_code": 250 if n else None, "created_at": now,
             "updated_at": now}
            for rid in ids[::2] for n in range(1 + rid % 2)]  # fmt: skip
    async with write_tx(engine) as conn:
        await conn.execute(schema.deliveries.insert(), rows)
    return {"wide": wide, "other": other, "start": start}


def _cases(v: dict[str, Any]) -> list[dict[str, Any]]:
    wide, other, start = v["wide"], v["other"], v["start"]
    cases = [
        {}, {"limit": 1}, {"text": "refund"}, {"text": "refund tracking"},
        {"text": "ref*"}, {"text": '"refund please"'}, {"text": "zzqxjw", "limit": 1},
        {"order_id": wide[0].id}, {"order_id": wide[0].id, "text": "refund"},
        {"alias": wide[1].seller_alias.upper(), "text": "refund"},
        {"seller": "wide@shop.example"}, {"seller": "WIDE@shop.example", "text": "refund"},
        {"seller": "wide@shop.example", "text": "refund", "limit": 2},
        {"buyer": "w1@b.example", "text": "refund"},
        {"seller": "wide@shop.example", "buyer": "w0@b.example", "text": "tracking"},
        {"seller": "nobody@x.example", "text": "refund"},
        {"party": "o@b.example"}, {"party": "other@x.example", "text": "refund"},
        {"since": start + timedelta(days=10), "until": start + timedelta(days=20)},
        {"since": start + timedelta(days=5), "text": "refund"},
        {"verdict": "reject"}, {"verdict": "deliver", "text": "refund"},
        {"verdict": "reject", "text": "tracking", "seller": "wide@shop.example"},
        {"direction": "seller-to-buyer", "text": "tracking"},
        {"finding_kind": "phone_number"}, {"finding_kind": "phone_number", "text": "refund"},
        {"text": "refund", "limit": 3, "before_id": 10**6},
        {"seller": other.seller, "text": "hello", "limit": 1},
    ]
    return [_filter(**c) for c in cases]


@pytest.mark.parametrize("plans", ["as shipped", "big parties, rare verdicts, tiny windows"])
async def test_the_bare_driver_answers_what_the_store_answers(
    engine: Any, varied: dict[str, Any], settings: Any, monkeypatch: Any, plans: str
) -> None:
    if plans != "as shipped":  # every party counts as big, every verdict as rare
        for module in (quick_sql, store_search):
            monkeypatch.setattr(module, "BIG_PARTY_RECORDS", 1)
            monkeypatch.setattr(module, "DRIVE_RATIO", 0)
            monkeypatch.setattr(module, "FEW_RECORDS", 10)
            monkeypatch.setattr(module, "WINDOW_FIRST", 2)
    cases = _cases(varied)
    # before_id as a real id, so a page starts inside the archive
    top = (await archive.search(engine, archive.SearchFilter(limit=1)))[0]["id"]
    cases[-2]["before_id"] = top - 5
    seen_deliveries = False
    for f in cases:
        fields = {k: v for k, v in f.items() if v is not None}
        want = await archive.search(engine, archive.SearchFilter(**fields), timeout=10)
        got = await _quick(settings.database.url, f)
        assert json.dumps(got, default=str) == json.dumps(want, default=str), fields
        seen_deliveries = seen_deliveries or any(r["deliveries"] for r in want)
    assert seen_deliveries  # the delivery states are compared too


async def test_unindexed_records_and_bad_text_go_the_store_s_way(
    engine: Any, varied: dict[str, Any], settings: Any
) -> None:
    """Records not yet in the text index: the store's catch_up writes them, so the bare
    driver steps aside (None); so it does for a text with no word (the store's error)."""
    url = settings.database.url
    raw = b"Subject: bulk\r\n\r\nrefund, loaded without the archive module\r\n"
    row = {"created_at": datetime.now(UTC), "verdict": "deliver", "original": raw,
           "sha256": "x", "prev_hash": "x", "hash": "x", "subject": "bulk"}  # fmt: skip
    async with write_tx(engine) as conn:
        await conn.execute(schema.archive.insert().values(row))
    assert await asyncio.to_thread(quick.search, url, _filter(text="refund"), 10) is None
    assert await asyncio.to_thread(quick.search, url, _filter(), 10) is not None
    await store_search.catch_up(engine)
    assert await asyncio.to_thread(quick.search, url, _filter(text="refund"), 10) is not None
    assert await asyncio.to_thread(quick.search, url, _filter(text="*"), 10) is None
    missing = url.rsplit("/", 1)[0] + "/missing.sqlite3" if "sqlite" in url else url + "_x"
    assert await asyncio.to_thread(quick.search, missing, _filter(), 10) is None


async def test_the_cli_search_imports_no_sqlalchemy(
    engine: Any, varied: dict[str, Any], settings: Any
) -> None:
    """End to end in a fresh interpreter: the answer is the store's, and neither
    SQLAlchemy nor pydantic was imported to give it (most of a call's time before)."""
    code = (
        "import sys\n"
        "from relay.cli import main\n"
        "try:\n"
        "    main(sys.argv[1:])\n"
        "except SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        "print(sorted(m for m in ('sqlalchemy', 'pydantic') if m in sys.modules), "
        "file=sys.stderr)\n"
    )
    args = ["archive", "search", "--text", "refund", "--seller", "wide@shop.example", "--json"]
    env = {**os.environ, "RELAY_DATABASE__URL": settings.database.url}
    env.pop("RELAY_CONFIG", None)
    out = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-c", code, *args], capture_output=True, text=True,
        env=env, check=True,
    )  # fmt: skip
    assert out.stderr.strip().splitlines()[-1] == "[]", out.stderr
    want = await archive.search(
        engine, archive.SearchFilter(text="refund", seller="wide@shop.example")
    )
    assert json.loads(out.stdout) == json.loads(json.dumps(want, default=str))
