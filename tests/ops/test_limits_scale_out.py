"""Two relay processes share the rate counters on one PostgreSQL (issue 13).

One buyer floods a seller through both relays at once while another buyer writes now and
then: the flooder gets exactly ``per_party_hour`` messages through (not one more, not one
fewer, although the two relays race for every one) and 450 4.7.1 for the rest; the other
buyer sees no refusal; the refusals show in both relays' metrics.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from relay.db import create_engine
from relay.store.counters import rate_counters
from tests.conftest import PG_URL
from tests.helpers import (
    DOMAIN,
    free_port,
    message,
    relay_cli,
    send,
    write_settings,
)
from tests.ops.support import RelayProcess, scrape, value

pytestmark = pytest.mark.skipif(
    not PG_URL, reason="two relays sharing counters need PostgreSQL: set RELAY_TEST_DATABASE_URL"
)

LIMIT = 30
FLOOD_CLIENTS_PER_RELAY = 3
FLOOD_EACH = 20  # 120 attempts for a limit of 30
FLOODER, CALM, SELLER = "flood@buyer-a.example", "calm@buyer-b.example", "shop@seller.example"
TOKEN = re.compile(rb"^Subject: (flood|calm) ", re.M)


async def _order(config: Path, order_id: str, buyer: str) -> str:
    code, out, err = await relay_cli(
        config, "order", "create", order_id, "--buyer", buyer, "--seller", SELLER, "--json"
    )
    assert code == 0, err
    return str(json.loads(out)["seller_alias"])


async def _client(port: int, sender: str, alias: str, kind: str, tag: str, n: int) -> Counter:
    seen: Counter[str] = Counter()
    for i in range(n):
        data = message(sender, alias, subject=f"{kind} {tag}-{i}").as_bytes()
        code, text = await send(port, sender, [alias], data)
        seen[f"{code} {text.split()[0]}" if code != 250 else "250"] += 1
    return seen


async def _calm(port: int, alias: str, tag: str, n: int) -> Counter:
    seen: Counter[str] = Counter()
    for i in range(n):
        await asyncio.sleep(0.1)
        seen += await _client(port, CALM, alias, "calm", f"{tag}{i}", 1)
    return seen


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_two_relays_trip_a_shared_limit_exactly(db_url: str, sink: Any, tmp_path: Path):
    started = time.monotonic()
    common: dict[str, Any] = {
        "relay": {"domain": DOMAIN},
        "database": {"url": db_url, "pool_size": 5},
        "delivery": {"smarthost": f"127.0.0.1:{sink.port}", "poll_interval": "0.2s"},
        "auth": {"mode": "off"},
        "policy": {"enabled": False},
        "log": {"format": "json"},
        "limits": {"per_party_hour": LIMIT, "per_party_day": 0, "per_order_day": 0,
                   "per_ip_minute": 0},  # both relays' clients share 127.0.0.1
    }  # fmt: skip
    procs, ports = {}, {}
    for name, args in (("relay1", ("serve",)), ("relay2", ("serve", "--no-worker"))):
        smtp_port, ops_port = free_port(), free_port()
        ports[name] = (smtp_port, ops_port)
        config = write_settings(
            tmp_path / f"{name}.toml", **common,
            smtp={"listen": f"127.0.0.1:{smtp_port}"},
            metrics={"listen": f"127.0.0.1:{ops_port}"},
        )  # fmt: skip
        procs[name] = RelayProcess(config, tmp_path / f"{name}.log", *args, port=smtp_port)
    config = procs["relay1"].config
    flood_alias = await _order(config, "113-0000000-0000001", FLOODER)
    calm_alias = await _order(config, "113-0000000-0000002", CALM)
    if (left := 3600 - time.time() % 3600) < 60:  # keep the run inside one hour window
        await asyncio.sleep(left + 1)
    try:
        await asyncio.gather(*(p.start() for p in procs.values()))
        flood = [
            _client(ports[r][0], FLOODER, flood_alias, "flood", f"{r}c{i}", FLOOD_EACH)
            for r in ports
            for i in range(FLOOD_CLIENTS_PER_RELAY)
        ]
        calm = [_calm(ports[r][0], calm_alias, r, 4) for r in ports]
        results = await asyncio.gather(*flood, *calm)
        flooded = sum(results[: len(flood)], Counter())
        calmed = sum(results[len(flood) :], Counter())
        await sink.wait_for(LIMIT + 8, timeout=30)
        await asyncio.sleep(1.0)  # one more would show up here
        metrics = {n: await scrape(ports[n][1]) for n in ports}
    finally:
        codes = {name: await p.stop() for name, p in procs.items()}
    assert codes == dict.fromkeys(procs, 0), codes
    print(f"\nshared limit: flood {dict(flooded)}, calm {dict(calmed)}, "
          f"{len(sink.messages)} delivered, {time.monotonic() - started:.1f}s")
    attempts = FLOOD_EACH * FLOOD_CLIENTS_PER_RELAY * 2
    assert flooded == Counter({"250": LIMIT, "450 4.7.1": attempts - LIMIT}), flooded
    assert calmed == Counter({"250": 8}), calmed
    kinds = Counter(m.group(1) for d in sink.messages if (m := TOKEN.search(d.data)))
    assert kinds == Counter({b"flood": LIMIT, b"calm": 8})
    hits = sum(value(metrics[n], "relay_limit_hits_total", limit="per_party_hour") for n in ports)
    assert hits == attempts - LIMIT
    assert all(value(metrics[n], "relay_limit_hits_total", limit="per_party_hour") > 0
               for n in ports), "both relays refused some"
    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:
            used = (
                await conn.execute(
                    sa.select(sa.func.sum(rate_counters.c.value)).where(
                        rate_counters.c.scope == "party:h"
                    )
                )
            ).scalar()
    finally:
        await engine.dispose()
    assert used == LIMIT + 8
