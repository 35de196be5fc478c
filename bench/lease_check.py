"""Reproduce duplicate deliveries by one live relay on SQLite (no crash involved).

An in-process relay with ``delivery.claim_lease = 2s`` under 8 SMTP clients for 8 s;
times the queue's write transactions (claim, renew, record) and notes every claim that
returns a row the same worker is still sending. Run from the project root:

    .venv/bin/python bench/lease_check.py [DB_URL]

DB_URL defaults to a new SQLite file; a PostgreSQL URL must name a scratch database
(the schema is created in it and left there).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiosmtplib

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from relay import orders, queue
from tests.helpers import Sink, message, running_relay, test_settings

TIMES: dict[str, list[float]] = defaultdict(list)
RECLAIMED: list[int] = []
WORKER: list[Any] = []  # the relay's delivery worker, once started
BUYER, SELLER = "alice@buyer.example", "support@shop.example"


def timed(name: str, fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            result = await fn(*args, **kwargs)
        finally:
            TIMES[name].append(time.perf_counter() - start)
        if name == "claim":
            RECLAIMED.extend(item.id for item in result if WORKER and item.id in WORKER[0]._held)
        return result

    return wrapper


async def main(url: str) -> None:
    for name in ("claim", "renew", "record"):
        setattr(queue, name, timed(name, getattr(queue, name)))
    sink = Sink()
    await sink.start()
    settings = test_settings(
        url,
        delivery={"smarthost": f"127.0.0.1:{sink.port}", "claim_lease": "2s"},
        log={"level": "warning"},
    )
    async with running_relay(settings) as relay:
        WORKER.append(relay.worker)  # its _held: the ids it is sending right now
        order = await orders.create_order(
            relay.engine, "relay.example", "900-0000000-0000009", buyer=BUYER, seller=SELLER
        )
        stop = time.perf_counter() + 8

        async def client(i: int) -> None:
            n = 0
            while time.perf_counter() < stop:
                n += 1
                data = message(BUYER, order.seller_alias, subject=f"t{i}-{n}").as_bytes()
                smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=relay.port)
                await smtp.connect()
                await smtp.sendmail(BUYER, [order.seller_alias], data)
                await smtp.quit()

        await asyncio.gather(*(client(i) for i in range(8)))
        await asyncio.sleep(3)
    await sink.stop()
    subjects = Counter(m.data.split(b"Subject: ")[1].split(b"\r\n")[0] for m in sink.messages)
    dups = sum(n - 1 for n in subjects.values())
    print(f"messages {len(subjects)}, duplicate deliveries {dups}, own in-flight rows re-claimed"
          f" {RECLAIMED}")  # fmt: skip
    for name, values in TIMES.items():
        v = sorted(values)
        print(
            f"{name:7s} n={len(v):4d} p50={v[len(v) // 2] * 1e3:7.1f} ms  max={v[-1] * 1e3:7.1f} ms"
        )


if __name__ == "__main__":
    default = f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/lease.sqlite3"
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else default))
