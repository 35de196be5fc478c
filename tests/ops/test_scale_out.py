"""Scale-out on PostgreSQL: two ``relay serve --no-worker`` and two ``relay worker``
processes share one database under concurrent SMTP load on both relays.

Every message answered 250 must reach the recipient's server exactly once (no process is
killed here, so not even the documented crash-window duplicate is allowed), every
delivery row must have exactly one attempt recorded and have been sent by exactly one
worker, the hash chain must verify with two concurrent archive writers, and the
database-derived counters must agree across processes.
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
from relay.store.tables import deliveries, delivery_events
from tests.conftest import PG_URL
from tests.helpers import (
    BUYER,
    DOMAIN,
    ORDER,
    SELLER,
    free_port,
    relay_cli,
    send_until,
    write_settings,
)
from tests.ops.support import RelayProcess, scrape, value

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not PG_URL, reason="scale-out needs PostgreSQL: set RELAY_TEST_DATABASE_URL"
    ),
]

CLIENTS_PER_RELAY = 5
LOAD_SECONDS = 8.0
TOKEN = re.compile(rb"Subject: scale ([a-z0-9-]+)")


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_two_relays_two_workers_one_postgresql(db_url: str, sink: Any, tmp_path: Path):
    started = time.monotonic()
    arrivals: list[bytes] = []
    sink.data_reply = lambda data: arrivals.append(data) and None
    common: dict[str, Any] = {
        "relay": {"domain": DOMAIN},
        "database": {"url": db_url, "pool_size": 5},
        "delivery": {"smarthost": f"127.0.0.1:{sink.port}", "poll_interval": "0.2s"},
        "auth": {"mode": "off"},
        # Content checks in threads: four processes each starting two content workers
        # would spend the test's load window on start-up CPU; this test is about the
        # shared commit and queue.
        "policy": {"workers": 0},
        "log": {"format": "json"},
        "limits": {  # one order and one client address carry the whole load
            "per_order_day": 0, "per_party_hour": 0, "per_party_day": 0, "per_ip_minute": 0,
        },
    }
    procs: dict[str, RelayProcess] = {}
    ports: dict[str, tuple[int, int]] = {}
    for name in ("relay1", "relay2", "worker1", "worker2"):
        smtp_port, ops_port = free_port(), free_port()
        ports[name] = (smtp_port, ops_port)
        config = write_settings(
            tmp_path / f"{name}.toml",
            **common,
            smtp={"listen": f"127.0.0.1:{smtp_port}"},
            metrics={"listen": f"127.0.0.1:{ops_port}"},
        )
        relay = name.startswith("relay")
        procs[name] = RelayProcess(
            config,
            tmp_path / f"{name}.log",
            *(("serve", "--no-worker") if relay else ("worker",)),
            port=smtp_port if relay else None,
        )
    config = procs["relay1"].config
    code, out, err = await relay_cli(
        config, "order", "create", ORDER, "--buyer", BUYER, "--seller", SELLER, "--json"
    )
    assert code == 0, err
    alias = json.loads(out)["seller_alias"]

    stop = asyncio.Event()
    try:
        await asyncio.gather(*(p.start() for p in procs.values()))
        phases = {"up": time.monotonic() - started}
        load = [
            asyncio.create_task(
                send_until(
                    stop, ports[relay][0], alias, token=f"{relay}-c{i}", subject="scale", timeout=20
                )
            )
            for relay in ("relay1", "relay2")
            for i in range(CLIENTS_PER_RELAY)
        ]
        await asyncio.sleep(LOAD_SECONDS)
        stop.set()
        loads = await asyncio.gather(*load)
        refused = sum((x.replies for x in loads), Counter())
        acked = [(mark.split("-")[0], mark) for x in loads for mark in x.acked]
        expected = {token for _, token in acked}
        phases["load"] = time.monotonic() - started
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if expected <= {_token(d) for d in arrivals}:
                break
            await asyncio.sleep(0.2)
        phases["delivered"] = time.monotonic() - started
        await asyncio.sleep(1.0)  # a late duplicate would show up here
        relay_metrics = [await scrape(ports[n][1]) for n in ("relay1", "relay2", "worker1")]
    finally:
        stop.set()
        codes = {name: await p.stop() for name, p in procs.items()}
    assert codes == dict.fromkeys(procs, 0), codes

    delivered = Counter(_token(d) for d in arrivals)
    per_relay = Counter(relay for relay, _ in acked)
    print(
        f"\nscale-out: {len(acked)} accepted ({dict(per_relay)}), {len(delivered)} delivered, "
        f"refused {dict(refused)}, {time.monotonic() - started:.1f}s "
        f"({', '.join(f'{k} at {v:.1f}s' for k, v in phases.items())})"
    )
    assert len(acked) >= 40 and min(per_relay.values()) >= 10, per_relay
    assert not refused, f"refusals under load: {refused}"
    assert not expected - set(delivered), (
        f"accepted, never delivered: {len(expected - set(delivered))}"
    )
    assert not [t for t, n in delivered.items() if n > 1], "delivered twice without a crash"
    assert set(delivered) == expected

    # one attempt per delivery row, recorded once, by exactly one worker
    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(deliveries.c.id, deliveries.c.status, deliveries.c.attempts)
                )
            ).all()
            events = Counter(
                (await conn.execute(sa.select(delivery_events.c.delivery_id))).scalars().all()
            )
    finally:
        await engine.dispose()
    assert len(rows) == len(expected)
    assert {(r.status, r.attempts) for r in rows} == {("delivered", 1)}
    assert set(events.values()) == {1} and len(events) == len(rows)
    sent_by = {
        name: {
            line["delivery"]
            for line in procs[name].lines()
            if line.get("event") == "delivery.delivered"
        }
        for name in ("worker1", "worker2")
    }
    assert not sent_by["worker1"] & sent_by["worker2"], "a delivery sent by both workers"
    assert len(sent_by["worker1"] | sent_by["worker2"]) == len(rows)
    assert sent_by["worker1"] and sent_by["worker2"], "one worker did all the work"

    # the hash chain verifies with two concurrent writers
    code, out, err = await relay_cli(config, "archive", "verify")
    assert code == 0 and "chain intact" in out, out + err

    # database-derived counters: the same cluster-wide number from every process
    for scraped in relay_metrics:
        accepted = value(
            scraped, "relay_messages_total", kind="message", verdict="deliver", reason=""
        )
        assert accepted == len(expected)
        assert value(scraped, "relay_delivery_events_total", event="delivered") == len(expected)
    assert time.monotonic() - started < 90  # about 25 s on an idle two-core host


def _token(data: bytes) -> str:
    m = TOKEN.search(data)
    return m.group(1).decode() if m else ""
