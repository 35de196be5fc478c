"""Archive search at a million messages, as a user calls it: through the API and the CLI.

    .venv/bin/python bench/search_bench.py --url sqlite+aiosqlite:///var/bench/s.sqlite3
    .venv/bin/python bench/search_bench.py \
        --url postgresql+asyncpg://postgres@127.0.0.1/relay_bench_search

Builds the archive through the relay's own commit path (``relay.store.ledger``, the chain's
one writer, under its lock: hash chain, ``archive_text`` indexing as the relay does it), text
extracted before the lock as intake does; ``--writers`` processes (2) take ``--batch``
records per commit (500) in turn. Orders, parties and aliases are bulk-inserted (they are
not what is measured). The largest seller holds 10 % of the messages, the rest is spread
over 2,000 sellers. On PostgreSQL the bench creates (on a rebuild, recreates) the database
named in the URL; it refuses ``postgres``.

Then starts a real ``relay api`` process and times each search kind over HTTP with a
kept-alive client (median / p90 over ``--repeat`` calls), and ``relay archive search``
end to end as a subprocess (start-up included, with its CPU time). On PostgreSQL it first
waits for the relay process to analyse and vacuum the fresh archive
(``relay.db.statistics``); nobody runs ANALYZE by hand. Goal: < 100 ms through the API,
< 0.5 s through the CLI.

The archive is kept between runs (a 1M build takes 15-30 minutes): a run measures the
existing database when its marker file (``var/bench/<database>.bench.json``) says it
holds the same number of messages made by the same generator (``GENERATOR``); otherwise,
or with ``--rebuild``, it builds afresh. A newer schema needs no rebuild: every run starts
with ``relay db upgrade``, as an operator's would. The load average is printed with every
figure (the host is shared).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PER_ORDER = 10
SELLERS = 2000
BIG_SHARE = 0.10
BATCH = 500
TOKEN = "bench-token-0123456789abcdef"
TOPICS = {"refund": 0.02, "tracking": 0.05, "invoice": 0.01, "damaged": 0.003}
NOW = datetime.now(UTC)
GENERATOR = 1  # bump when make_batch or _prepare change what is built (forces a rebuild)


def order_id(n: int) -> str:
    s = f"{n:017d}"
    return f"{s[:3]}-{s[3:10]}-{s[10:]}"


def seller_of(order: int, orders: int) -> int:
    """Seller 0 gets BIG_SHARE of the orders, the others the rest round-robin."""
    if order < orders * BIG_SHARE:
        return 0
    return 1 + order % (SELLERS - 1)


def seller_email(n: int) -> str:
    return f"seller{n}@shop{n}.example"


def _words(seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(3, 10)))
            for _ in range(20000)]  # fmt: skip


def make_batch(b: int, messages: int, batch: int, words: list[str], seed: int) -> list[Any]:
    """Batch ``b`` of the archive: the same records whichever writer builds it.

    Text is extracted here, before the chain lock is taken (``record.extra["search"]``),
    as the relay's intake does; everything under the lock is the real commit path.
    """
    from relay.store import archive
    from relay.store.commit import Entry
    from relay.store.search import extract

    rng = random.Random(seed * 1_000_003 + b)
    n_orders = messages // PER_ORDER
    span = timedelta(days=365)
    first = NOW - span
    entries = []
    for n in range(b * batch, min((b + 1) * batch, messages)):
        order = n % n_orders  # threads interleave over the year, as real traffic does
        buyer_side = (n // n_orders) % 2 == 0
        body_words = rng.choices(words, k=40)
        for topic, share in TOPICS.items():
            if rng.random() < share:
                body_words[rng.randrange(40)] = topic
        subject = " ".join(rng.choices(words, k=4))
        raw = (f"From: x@example.com\r\nSubject: {subject}\r\n\r\n"
               f"{' '.join(body_words)}\r\n").encode()  # fmt: skip
        seller, buyer = seller_email(seller_of(order, n_orders)), f"buyer{order}@mail.example"
        entries.append(Entry(archive.Record(
            created_at=first + span * (n / messages), verdict="deliver", original=raw,
            sha256=hashlib.sha256(raw).hexdigest(), order_id=order_id(order),
            direction="buyer-to-seller" if buyer_side else "seller-to-buyer",
            alias=f"{'s' if buyer_side else 'b'}-{order:020d}@relay.example",
            mail_from=buyer if buyer_side else seller, rcpt=seller if buyer_side else buyer,
            subject=subject, extra={"search": extract(raw)},
        )))  # fmt: skip
    return entries


async def _write_batches(url: str, messages: int, batch: int, mine: list[int], seed: int) -> None:
    from relay.db import create_engine
    from relay.store import ledger

    engine = create_engine(url, pool_size=2)
    words = _words(seed)
    started = time.perf_counter()
    for i, b in enumerate(mine):
        entries = make_batch(b, messages, batch, words, seed)
        async with ledger.open(engine) as book:
            await book.append(entries)
        if mine[0] == 0 and (i + 1) % max(1, 50_000 // batch) == 0:  # writer 0 reports
            done = (b + 1) * batch
            print(f"  ~{done:,} records, {time.perf_counter() - started:.0f} s", flush=True)
    await engine.dispose()


def _writer(url: str, messages: int, batch: int, mine: list[int], seed: int) -> None:
    asyncio.run(_write_batches(url, messages, batch, mine, seed))


async def _prepare(url: str, messages: int) -> None:
    """Schema, then parties, orders and aliases in bulk (not what is measured)."""
    from relay.db import create_engine, write_tx
    from relay.db.migrate import upgrade
    from relay.store.tables import aliases, orders, parties

    engine = create_engine(url)
    await upgrade(engine)
    n_orders = messages // PER_ORDER
    created = NOW - timedelta(days=400)
    async with write_tx(engine) as conn:
        await conn.execute(parties.insert(), [
            {"id": i + 1, "email": seller_email(i), "display_name": "", "created_at": created}
            for i in range(SELLERS)
        ] + [
            {"id": SELLERS + i + 1, "email": f"buyer{i}@mail.example", "display_name": "",
             "created_at": created}
            for i in range(n_orders)
        ])  # fmt: skip
        await conn.execute(orders.insert(), [
            {"id": order_id(i), "buyer_id": SELLERS + i + 1,
             "seller_id": seller_of(i, n_orders) + 1, "buyer_locale": "en-US",
             "status": "open", "created_at": created}
            for i in range(n_orders)
        ])  # fmt: skip
        await conn.execute(aliases.insert(), [
            {"local_part": f"{r[0]}-{i:020d}", "order_id": order_id(i), "stands_for": r,
             "created_at": created}
            for i in range(n_orders) for r in ("buyer", "seller")
        ])  # fmt: skip
    await engine.dispose()


async def _finish(url: str) -> None:
    import sqlalchemy as sa

    from relay.db import create_engine
    from relay.store import archive
    from relay.store.search import catch_up

    engine = create_engine(url)
    indexed = await catch_up(engine, batch=2000)
    print(f"  indexed {indexed:,} records for full text afterwards", flush=True)
    async with engine.connect() as conn:
        total = (await conn.execute(sa.select(sa.func.count()).select_from(archive.archive)))
        print(f"  archive holds {total.scalar():,} records", flush=True)
    await engine.dispose()


def build(url: str, messages: int, *, writers: int, batch: int, seed: int = 7) -> float:
    """Writers take batches round-robin and queue on the chain lock, as the relay's own
    processes would; ids (and so the chain) follow commit order."""
    import multiprocessing

    started = time.perf_counter()
    asyncio.run(_prepare(url, messages))
    batches = list(range((messages + batch - 1) // batch))
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=_writer, args=(url, messages, batch, batches[w::writers], seed))
        for w in range(writers)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        if p.exitcode != 0:
            raise SystemExit(f"a writer failed (exit {p.exitcode})")
    asyncio.run(_finish(url))
    return time.perf_counter() - started


def _marker(url: str) -> Path:
    name = url.rpartition("/")[2] or "bench"
    return ROOT / "var" / "bench" / f"{name}.bench.json"


def _kept(url: str, messages: int) -> bool:
    """Whether the database at ``url`` is a finished build of this size and generator."""
    try:
        meta = json.loads(_marker(url).read_text())
    except (OSError, ValueError):
        return False
    if meta.get("messages") != messages or meta.get("generator") != GENERATOR:
        return False
    if url.startswith("sqlite"):
        return Path(url.split("///", 1)[1]).is_file()
    return True  # the database itself: _ensure_database keeps it when it exists


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.1f}/{five:.1f}"


def _ensure_database(url: str, fresh: bool) -> None:
    """The bench makes (and on a rebuild, remakes) its own database; never ``postgres``."""
    if url.startswith("sqlite"):
        path = Path(url.split("///", 1)[1])
        path.parent.mkdir(parents=True, exist_ok=True)
        if fresh:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    base, _, name = url.rpartition("/")
    if not name or name in ("postgres", "template0", "template1"):
        raise SystemExit("name a database of the bench's own, e.g. .../relay_bench_search")

    async def run() -> None:
        import asyncpg

        admin = await asyncpg.connect(base.replace("postgresql+asyncpg://", "postgresql://")
                                      + "/postgres")  # fmt: skip
        try:
            exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
            if exists and fresh:
                await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            if not exists or fresh:
                await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()

    asyncio.run(run())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stats(samples: list[float]) -> tuple[float, float]:
    ms = sorted(s * 1000 for s in samples)
    return statistics.median(ms), ms[max(0, int(len(ms) * 0.9) - 1)]


def _wait_for_statistics(url: str, timeout: float = 600) -> None:
    """The relay process analyses and vacuums what changed (relay.db.statistics); wait
    until it has, rather than running ANALYZE or VACUUM here."""
    async def run() -> None:
        import asyncpg

        conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            t0 = time.perf_counter()
            while time.perf_counter() - t0 < timeout:
                n = await conn.fetchval(
                    "SELECT count(*) FROM pg_stat_user_tables WHERE relname IN "
                    "('archive', 'archive_text') AND coalesce(last_analyze, "
                    "last_autoanalyze) IS NOT NULL AND coalesce(last_vacuum, "
                    "last_autovacuum) IS NOT NULL"
                )
                if n == 2:
                    took = time.perf_counter() - t0
                    print(f"statistics fresh after {took:.0f} s (analysed and vacuumed "
                          "by the relay api process)", flush=True)  # fmt: skip
                    return
                await asyncio.sleep(1)
            raise SystemExit("the relay did not analyse the archive in time")
        finally:
            await conn.close()

    asyncio.run(run())


def measure(url: str, repeat: int, messages: int) -> list[tuple[str, float, float, str]]:
    import httpx

    port = _free_port()
    config = Path(tempfile.mkdtemp()) / "bench.toml"
    config.write_text(
        f'[database]\nurl = "{url}"\n[api]\nlisten = "127.0.0.1:{port}"\n'
        f'ops_tokens = ["{TOKEN}"]\n[log]\nlevel = "warning"\n'
    )
    relay = str(Path(sys.executable).with_name("relay"))
    # Migrate first (a new index on a 1M archive takes a while), then serve.
    subprocess.run([relay, "--config", str(config), "db", "upgrade"], check=True)
    proc = subprocess.Popen([relay, "--config", str(config), "api"])
    rows: list[tuple[str, float, float, str]] = []
    try:
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"},
                          timeout=60) as client:  # fmt: skip
            for _ in range(600):
                try:
                    client.get("/openapi.json")
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            if not url.startswith("sqlite"):
                _wait_for_statistics(url)
            rng = random.Random(11)
            n_orders = max(1, messages // PER_ORDER)
            big = seller_email(0)
            week = (NOW - timedelta(days=7)).isoformat()

            def page10() -> dict[str, str]:
                params = {"text": "tracking", "limit": "50"}
                for _ in range(9):
                    nxt = client.get("/v1/archive", params=params).json()["next_before_id"]
                    params = {**params, "before_id": str(nxt)}
                return params

            cases = {
                "thread (one order)": lambda: {"order_id": order_id(rng.randrange(n_orders))},
                "word 'refund' (2 %)": lambda: {"text": "refund"},
                "two words 'damaged refund'": lambda: {"text": "damaged refund"},
                "page 10 of 'tracking' (5 %)": page10,
                "word + largest seller (10 %)": lambda: {"text": "refund", "seller": big},
                "word + small seller": lambda: {
                    "text": "refund", "seller": seller_email(1 + rng.randrange(SELLERS - 1))},
                "word matching nothing, limit 1": lambda: {"text": "zzqxjw", "limit": "1"},
                "common word + filter matching nothing": lambda: {
                    "text": "tracking", "verdict": "reject"},
                "one-week listing": lambda: {"since": week},
            }
            for name, make in cases.items():
                client.get("/v1/archive", params=make())  # warm
                samples, count = [], 0
                for _ in range(repeat):
                    params = make()
                    t0 = time.perf_counter()
                    r = client.get("/v1/archive", params=params)
                    samples.append(time.perf_counter() - t0)
                    assert r.status_code == 200, r.text
                    count = len(r.json()["items"])
                med, p90 = _stats(samples)
                rows.append((f"API {name}", med, p90, f"{count} rows, {_load()}"))
                print(f"{rows[-1][0]:48} {med:8.1f} {p90:8.1f} ms  {rows[-1][3]}", flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    env = {**os.environ, "RELAY_CONFIG": str(config)}
    # As installed: pip compiles the package's bytecode; a shell with
    # PYTHONDONTWRITEBYTECODE set would recompile relay's modules on every run instead.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run([relay, "--help"], env=env, check=True, stdout=subprocess.DEVNULL)
    subprocess.run([relay, "archive", "search", "--text", "refund", "--limit", "50"], env=env,
                   check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    for label, seller in (("largest seller", seller_email(0)), ("small seller", seller_email(7))):
        samples, cpu = [], []
        for _ in range(max(3, repeat // 10)):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            subprocess.run([relay, "archive", "search", "--text", "refund", "--seller", seller,
                            "--limit", "50", "--json"], env=env, check=True,
                           stdout=subprocess.DEVNULL)  # fmt: skip
            samples.append(time.perf_counter() - t0)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        med, p90 = _stats(samples)
        note = f"end to end; CPU {statistics.median(cpu) * 1000:.0f} ms; {_load()}"
        rows.append((f"CLI archive search --text --seller ({label})", med, p90, note))
        print(f"{rows[-1][0]:48} {med:8.1f} {p90:8.1f} ms  {note}", flush=True)
    samples = []
    for _ in range(5):
        t0 = time.perf_counter()
        subprocess.run([relay, "--help"], env=env, check=True, stdout=subprocess.DEVNULL)
        samples.append(time.perf_counter() - t0)
    med, p90 = _stats(samples)
    rows.append(("CLI relay --help", med, p90, f"start-up, {_load()}"))
    print(f"{rows[-1][0]:48} {med:8.1f} {p90:8.1f} ms  {rows[-1][3]}", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default="sqlite+aiosqlite:///var/bench/search.sqlite3")
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--writers", type=int, default=2, help="writer processes (chain-locked)")
    ap.add_argument("--batch", type=int, default=BATCH, help="records per commit")
    ap.add_argument("--rebuild", action="store_true", help="build afresh even if kept")
    ap.add_argument("--reuse", action="store_true", help="measure the database as it is")
    ap.add_argument("--build-only", action="store_true", help="build, do not measure")
    args = ap.parse_args()
    build_it = args.rebuild or not (args.reuse or _kept(args.url, args.messages))
    _ensure_database(args.url, fresh=build_it)
    if build_it:
        _marker(args.url).unlink(missing_ok=True)
        print(f"building {args.messages:,} messages at {args.url} "
              f"({args.writers} writers, {args.batch} per commit) ...", flush=True)  # fmt: skip
        took = build(args.url, args.messages, writers=args.writers, batch=args.batch)
        print(f"built in {took:.0f} s", flush=True)
        _marker(args.url).write_text(json.dumps({
            "messages": args.messages, "generator": GENERATOR, "built_s": round(took),
            "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }) + "\n")  # fmt: skip
    else:
        print(f"measuring the kept archive at {args.url} ({_marker(args.url).name})", flush=True)
    if args.build_only:
        return
    print(f"{'case':48} {'median':>8} {'p90':>8}   (machine {_load()})", flush=True)
    measure(args.url, args.repeat, args.messages)


if __name__ == "__main__":
    main()
