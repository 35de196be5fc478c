"""The cost of counting where it is paid: the group commit under the chain lock.

    .venv/bin/python bench/limits_commit_bench.py [--url URL] [--groups 40] [--size 32]

Commits groups of ``--size`` archive entries (1 KB messages, one delivery each) the way
relay.store.commit does, alternating groups without charges and groups charging every counter
a message charges with all limits on (party hour/day, order day, address minute,
proactive, archive bytes), and prints messages/s of each and the difference. The commit
is the relay's serial section, so its relative cost bounds the end-to-end one.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import statistics
import tempfile
import time
from datetime import timedelta

from relay.db import create_engine
from relay.db.migrate import upgrade
from relay.ratelimits import RateLimits
from relay.settings import Settings
from relay.store import archive, commit
from relay.store.tables import utcnow

START = int(time.time() * 1000) % 10**9  # fresh delivery tokens on a reused database
RAW = (b"From: a@b.example\r\nTo: x@relay.example\r\nSubject: bench\r\n\r\n" + b"x" * 1000)


class _Res:  # the parts of relay.store.resolve.Resolution the charges read
    def __init__(self, n: int) -> None:
        self.sender_party_id = n % 50
        self.order_id = f"900-0000000-{n % 500:07d}"
        self.alias = f"s-{n % 500}@relay.example"
        self.direction = "seller-to-buyer"


def _entries(size: int, start: int, limits: RateLimits | None) -> list[commit.Entry]:
    now = utcnow()
    out = []
    for n in range(start, start + size):
        record = archive.Record(
            created_at=now, verdict="deliver", original=RAW,
            sha256=hashlib.sha256(RAW).hexdigest(), delivered=RAW, size=len(RAW),
            extra={"search": ("bench", False)},
        )  # fmt: skip
        out_ = commit.Outgoing(
            mail_from="b@relay.example", rcpt="r@x.example", token=f"t{n}-{START}"
        )
        charges = () if limits is None else limits.charges(
            _Res(n), client_ip=f"10.0.{n % 200}.1", proven=True, refusal=None, delivering=True,
            reply=False, size=len(RAW), delivered_size=len(RAW), now=now,
        )  # fmt: skip
        out.append(commit.Entry(record, out_, charges=charges))
    return out


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="")
    ap.add_argument("--groups", type=int, default=40)
    ap.add_argument("--size", type=int, default=32)
    args = ap.parse_args()
    url = args.url or f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/bench.sqlite3"
    engine = create_engine(url)
    await upgrade(engine)
    big = 10**12
    settings = Settings.model_validate({"limits": {
        "per_party_hour": big, "per_party_day": big, "per_order_day": big, "per_ip_minute": big,
        "proactive_per_order": big, "archive_bytes_per_party_day": big,
        "reply_window": timedelta(days=7),
    }})  # fmt: skip
    limits = RateLimits(settings)
    times: dict[str, list[float]] = {"off": [], "on": []}
    n = 0
    for g in range(args.groups * 2):
        kind = ("off", "on")[g % 2]
        entries = _entries(args.size, n, limits if kind == "on" else None)
        n += args.size
        t = time.perf_counter()
        await commit.commit_now(engine, entries)
        times[kind].append(time.perf_counter() - t)
    await engine.dispose()
    rate = {k: args.size / statistics.median(v) for k, v in times.items()}
    print(f"{url.split(':')[0]}: group of {args.size}, median of {args.groups} groups each: "
          f"limits off {rate['off']:.0f} msgs/s, on {rate['on']:.0f} msgs/s, "
          f"cost {100 * (1 - rate['on'] / rate['off']):.1f}%")


if __name__ == "__main__":
    asyncio.run(main())
