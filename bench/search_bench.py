"""Archive search at scale: 1,000,000 messages on SQLite, thread and full-text latency.

    .venv/bin/python bench/search_bench.py [--messages 1000000] [--db var/bench/search.sqlite3]

Builds (or reuses) a synthetic archive and times, through the real query code
(``relay.archive.search``), an order's thread and several full-text queries: median and
p90 over repeated queries. The goal is under 100 ms each.

BENCH ONLY: the rows are bulk-inserted with plain sqlite3 executemany, bypassing the group
commit and the hash chain (``prev_hash``/``hash`` hold a placeholder), so ``relay archive
verify`` rejects this database by design. The schema, the FTS5 table and its trigger are
the real ones, created by the migrations; ``archive_text`` rows are inserted directly, the
way ``relay.search.index_many`` does, and the trigger feeds FTS5 from them.

Measured 2026-11-27 (2 vCPU VM shared with other jobs, load ~4; 100 queries each, through
``relay.archive.search`` incl. SQLAlchemy and delivery-state lookups): build 198 s, 1.49 GB.
thread 3.6 / 6.6 ms (median / p90); common word (5 %) 5.8 / 8.9; rare word 6.1 / 9.7;
two words 7.2 / 8.7; word + seller 12.6 / 19.0; word + order 6.2 / 8.4; word + last 7
days 7.9 / 9.9; page 2 of a 2 % word 20.4 / 42.0. Known slow case: a common word with a
filter that no index narrows and that eliminates every match (FTS5 walks all ~50,000
matches): 149 / 184 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import random
import sqlite3
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from relay import archive
from relay.db import create_engine
from relay.db.migrate import upgrade

PER_ORDER = 10
SELLERS = 2000
TOPICS = {  # word -> share of messages that contain it
    "refund": 0.02,
    "tracking": 0.05,
    "invoice": 0.01,
    "damaged": 0.003,
    "lithium": 0.0002,
}


def _vocabulary(rng: random.Random, size: int = 20000) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return ["".join(rng.choices(letters, k=rng.randint(3, 10))) for _ in range(size)]


def _order_id(n: int) -> str:
    s = f"{n:017d}"
    return f"{s[:3]}-{s[3:10]}-{s[10:]}"


def build(path: Path, messages: int, seed: int = 7) -> float:
    """Create the archive; returns the seconds it took."""
    started = time.perf_counter()
    if path.exists():
        path.unlink()
    engine = create_engine(f"sqlite+aiosqlite:///{path}")

    async def migrate() -> None:
        await upgrade(engine)
        await engine.dispose()

    asyncio.run(migrate())
    rng = random.Random(seed)
    words = _vocabulary(rng)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA synchronous=OFF")
    db.execute("PRAGMA cache_size=-400000")
    db.execute("BEGIN")
    now = datetime(2026, 11, 27, tzinfo=UTC).replace(tzinfo=None)
    orders = messages // PER_ORDER
    db.executemany(
        "INSERT INTO parties(id, email, display_name, allow_spf_only, created_at) "
        "VALUES (?, ?, '', 0, ?)",
        [(i + 1, f"seller{i}@shop{i}.example", now) for i in range(SELLERS)]
        + [(SELLERS + i + 1, f"buyer{i}@mail.example", now) for i in range(orders)],
    )
    db.executemany(
        "INSERT INTO orders(id, buyer_id, seller_id, buyer_locale, buyer_name, seller_name, "
        "status, created_at) VALUES (?, ?, ?, 'en-US', '', '', 'open', ?)",
        [(_order_id(i), SELLERS + i + 1, i % SELLERS + 1, now) for i in range(orders)],
    )
    db.executemany(
        "INSERT INTO aliases(local_part, order_id, stands_for, created_at) VALUES (?, ?, ?, ?)",
        [
            (f"{r[0]}-{i:020d}", _order_id(i), r, now)
            for i in range(orders)
            for r in ("buyer", "seller")
        ],
    )
    start = now - timedelta(days=365)
    step = timedelta(days=365) / messages
    chunk = 20000
    for base in range(0, messages, chunk):
        arch, text = [], []
        for n in range(base, min(base + chunk, messages)):
            order = n % orders  # threads interleave over the year, as real traffic does
            buyer_side = (n // orders) % 2 == 0
            body_words = rng.choices(words, k=40)
            for topic, share in TOPICS.items():
                if rng.random() < share:
                    body_words[rng.randrange(40)] = topic
            body = " ".join(body_words)
            subject = " ".join(rng.choices(words, k=4))
            raw = f"From: x@example.com\r\nSubject: {subject}\r\n\r\n{body}\r\n".encode()
            seller, buyer = (
                f"seller{order % SELLERS}@shop{order % SELLERS}.example",
                f"buyer{order}@mail.example",
            )
            arch.append((
                n + 1, start + step * n, _order_id(order),
                "buyer-to-seller" if buyer_side else "seller-to-buyer",
                f"{'s' if buyer_side else 'b'}-{order:020d}@relay.example",
                buyer if buyer_side else seller, seller if buyer_side else buyer,
                subject, raw, hashlib.sha256(raw).hexdigest(),
            ))  # fmt: skip
            text.append((n + 1, subject, body))
        db.executemany(
            "INSERT INTO archive(id, created_at, order_id, direction, alias, mail_from, rcpt, "
            "subject, verdict, original, delivered, sha256, prev_hash, hash) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'deliver', ?, NULL, ?, 'bench', 'bench')",
            arch,
        )
        db.executemany(
            "INSERT INTO archive_text(archive_id, subject, body_text, automatic) "
            "VALUES (?, ?, ?, 0)",
            text,
        )
    db.execute("COMMIT")
    db.execute("INSERT INTO archive_fts(archive_fts) VALUES ('optimize')")
    db.execute("ANALYZE")
    db.close()
    return time.perf_counter() - started


def _seller_refund(n: int) -> archive.SearchFilter:
    return archive.SearchFilter(text="refund", seller=f"seller{n}@shop{n}.example", limit=50)


def _stats(samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    p90 = ms[max(0, int(len(ms) * 0.9) - 1)]
    return f"median {statistics.median(ms):7.2f} ms   p90 {p90:7.2f} ms   max {ms[-1]:7.2f} ms"


async def measure(path: Path, repeat: int, seed: int = 11) -> dict[str, list[float]]:
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    rng = random.Random(seed)
    async with engine.connect() as conn:
        from sqlalchemy import text

        count = (await conn.execute(text("SELECT max(id) FROM archive"))).scalar() or 0
    orders = max(1, count // PER_ORDER)
    cases = {
        "thread (order, 100 newest)": lambda: archive.SearchFilter(
            order_id=_order_id(rng.randrange(orders)), limit=100
        ),
        "text common 'tracking' (5%)": lambda: archive.SearchFilter(text="tracking", limit=50),
        "text 'refund' (2%) + seller": lambda: _seller_refund(rng.randrange(SELLERS)),
        "text rare 'lithium' (0.02%)": lambda: archive.SearchFilter(text="lithium", limit=50),
        "text two words 'damaged refund'": lambda: archive.SearchFilter(
            text="damaged refund", limit=50
        ),
        "text 'refund' page 2 (before_id)": lambda: archive.SearchFilter(
            text="refund", limit=50, before_id=count - rng.randrange(count // 2)
        ),
        "text 'tracking' in one order": lambda: archive.SearchFilter(
            text="tracking", order_id=_order_id(rng.randrange(orders)), limit=50
        ),
        "text 'refund' + last 7 days": lambda: archive.SearchFilter(
            text="refund", since=datetime(2026, 11, 20, tzinfo=UTC), limit=50
        ),
        "worst: 'tracking' + verdict none has": lambda: archive.SearchFilter(
            text="tracking", verdict="reject", limit=50
        ),
    }
    results: dict[str, list[float]] = {}
    for name, make in cases.items():
        await archive.search(engine, make())  # warm the cache
        samples = []
        for _ in range(repeat):
            f = make()
            t0 = time.perf_counter()
            rows = await archive.search(engine, f)
            samples.append(time.perf_counter() - t0)
        results[name] = samples
        print(f"{name:34} {_stats(samples)}   ({len(rows)} rows last)")
    await engine.dispose()
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--db", type=Path, default=Path("var/bench/search.sqlite3"))
    ap.add_argument("--repeat", type=int, default=50)
    ap.add_argument("--reuse", action="store_true", help="measure an existing database")
    args = ap.parse_args()
    args.db.parent.mkdir(parents=True, exist_ok=True)
    if not (args.reuse and args.db.exists()):
        print(f"building {args.messages:,} messages in {args.db} ...", flush=True)
        took = build(args.db, args.messages)
        size = args.db.stat().st_size / 1e6
        print(f"built in {took:.0f} s, {size:.0f} MB", flush=True)
    asyncio.run(measure(args.db, args.repeat))


if __name__ == "__main__":
    main()
