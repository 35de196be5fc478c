"""Prometheus metrics and health endpoints over real HTTP after real SMTP traffic."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from relay import metrics
from tests.helpers import (
    BUYER,
    DOMAIN,
    SELLER,
    create_order,
    make_cert,
    message,
    running_relay,
    send,
)
from tests.ops.support import http_get, scrape, total, value

PHONE = "+44 20 7946 0321"
PROMO = (
    "Thank you for your order! Use code SAVE20 for 20% off your next purchase in our "
    "shop, and have a look at our new summer collection with great discounts.\n"
)


async def _traffic(port: int, order: Any) -> None:
    """A buyer question, then the seller's answers: two deliveries (one redacted), one
    policy reject; one stranger, one unknown RCPT."""
    question = message(BUYER, order.seller_alias, "Where is it?", "Any news?\n").as_bytes()
    assert (await send(port, BUYER, [order.seller_alias], question))[0] == 250
    alias = order.buyer_alias
    plain = message(SELLER, alias, "Shipped", "Your parcel left today.\n").as_bytes()
    assert (await send(port, SELLER, [alias], plain))[0] == 250
    body = f"Your parcel left today. Questions? Call me on {PHONE}.\n"
    redact = message(SELLER, alias, "Your order", body).as_bytes()
    assert (await send(port, SELLER, [alias], redact))[0] == 250
    promo = message(SELLER, alias, "Special offer", PROMO).as_bytes()
    assert (await send(port, SELLER, [alias], promo))[0] == 550
    stranger = message("mallory@evil.example", alias).as_bytes()
    assert (await send(port, "mallory@evil.example", [alias], stranger))[0] == 550
    unknown = f"nobody@{DOMAIN}"
    assert (await send(port, SELLER, [unknown], plain))[0] == 550


async def test_metrics_after_real_traffic(make_settings, sink, monkeypatch) -> None:
    monkeypatch.setattr(metrics, "RESPONSES_EVERY", 0.0)  # recompute on every scrape
    settings = make_settings(
        delivery={"smarthost": f"127.0.0.1:{sink.port}"}, metrics={"listen": "127.0.0.1:0"}
    )
    async with running_relay(settings) as relay:
        port = relay.ops.port
        before = await scrape(port)
        order = await create_order(relay, seller_name="Shop")
        await _traffic(relay.port, order)
        await sink.wait_for(3)
        for _ in range(100):  # the worker records the outcome just after the sink's 250
            after = await scrape(port)
            if value(after, "relay_delivery_events_total", event="delivered") == 3:
                break
            await asyncio.sleep(0.1)

        def delta(name: str, **labels: str) -> float:
            return total(after, name, **labels) - total(before, name, **labels)

        m = "relay_messages_total"
        assert value(after, m, kind="message", verdict="deliver", reason="") == 2
        assert value(after, m, kind="message", verdict="redact", reason="") == 1
        assert value(after, m, kind="message", verdict="refused", reason="stranger") == 1
        assert total(after, m, verdict="reject") == 1
        rejects = [dict(ls) for (n, ls) in after if n == m and ("verdict", "reject") in ls]
        assert rejects[0]["reason"] not in ("", "policy", "other"), rejects  # the rule's name
        assert value(after, "relay_redactions_total", kind="phone_number") >= 1
        assert value(after, "relay_delivery_events_total", event="delivered") == 3
        assert value(after, "relay_delivery_latency_seconds_count") == 3
        assert value(after, "relay_delivery_latency_seconds_bucket", le="+Inf") == 3
        assert value(after, "relay_queue_depth", status="queued") == 0
        assert value(after, "relay_queue_oldest_age_seconds") == 0
        assert value(after, "relay_database_up") == 1
        # in-process instruments (module-level, so compared with the scrape before)
        assert delta("relay_smtp_rcpt_refused_total", code="5.1.1") == 1
        assert delta("relay_smtp_data_seconds_count", reply="2xx") == 3
        assert delta("relay_smtp_data_seconds_count", reply="5xx") == 2
        assert delta("relay_smtp_connections_total", outcome="accepted") == 6
        # the 24-hour response rule, over all sellers: one question, answered in seconds
        assert value(after, "relay_response_buyer_messages", window="30d") == 1
        assert value(after, "relay_response_open_overdue", window="30d") == 0
        assert value(after, "relay_response_late_ratio", window="30d") == 0
        assert 0 <= value(after, "relay_response_average_seconds", window="30d") < 60
        assert value(after, "relay_smtp_sessions_open") == 0
        assert value(after, "process_resident_memory_bytes") > 0

        assert await http_get(port, "/healthz") == (200, "alive\n")
        status, body = await http_get(port, "/readyz")
        ready = json.loads(body)
        assert status == 200 and ready["ready"], body
        assert set(ready["checks"]) == {
            "running", "database", "listener", "tls", "policy_workers", "worker"}  # fmt: skip
        assert (await http_get(port, "/nope"))[0] == 404


async def test_counters_do_not_double_count_when_rows_settle(make_settings, sink, monkeypatch):
    """Rows fold into the running totals once; later scrapes read only the new tail."""
    settings = make_settings(
        delivery={"smarthost": f"127.0.0.1:{sink.port}"}, metrics={"listen": "127.0.0.1:0"}
    )
    async with running_relay(settings) as relay:
        order = await create_order(relay)
        data = message(BUYER, order.seller_alias).as_bytes()
        for _ in range(3):
            assert (await send(relay.port, BUYER, [order.seller_alias], data))[0] == 250
        await sink.wait_for(3)
        monkeypatch.setattr(metrics, "SETTLE", 3600.0)  # nothing settles: all read live
        live = await scrape(relay.ops.port)
        monkeypatch.setattr(metrics, "SETTLE", -1.0)  # everything settles
        monkeypatch.setattr(metrics, "PAGE", 2)  # and paging is exercised
        first, second = await scrape(relay.ops.port), await scrape(relay.ops.port)
        assert (await send(relay.port, BUYER, [order.seller_alias], data))[0] == 250
        third = await scrape(relay.ops.port)
    m = "relay_messages_total"
    for snapshot in (live, first, second):
        assert value(snapshot, m, kind="message", verdict="deliver", reason="") == 3
    assert value(third, m, kind="message", verdict="deliver", reason="") == 4


@pytest.mark.parametrize("days,ready", [(3, False), (90, True)])
async def test_readyz_checks_certificate_expiry(make_settings, tmp_path, days, ready) -> None:
    cert, key = make_cert(tmp_path, "mx.relay.example", days=days)
    settings = make_settings(
        smtp={"tls_cert": str(cert), "tls_key": str(key)},
        metrics={"listen": "127.0.0.1:0", "cert_min_days": 14},
    )
    async with running_relay(settings, worker=False) as relay:
        status, body = await http_get(relay.ops.port, "/readyz")
        scraped = await scrape(relay.ops.port)
    checks = json.loads(body)["checks"]
    assert (status == 200) is ready and checks["tls"][0] is ready, body
    assert "worker" not in checks
    expiry = value(scraped, "relay_tls_cert_expiry_timestamp_seconds")
    assert expiry > 0


async def test_readyz_fails_while_database_is_unreachable(tmp_path) -> None:
    from tests.helpers import test_settings

    settings = test_settings(
        f"sqlite+aiosqlite:///{tmp_path}/relay.sqlite3", metrics={"listen": "127.0.0.1:0"}
    )
    async with running_relay(settings, smtp=False) as relay:
        assert (await http_get(relay.ops.port, "/readyz"))[0] == 200
        await relay.engine.dispose()
        (tmp_path / "relay.sqlite3").unlink()
        (tmp_path / "relay.sqlite3").mkdir()  # the path is now a directory: cannot open
        status, body = await http_get(relay.ops.port, "/readyz")
        assert status == 503 and json.loads(body)["checks"]["database"][0] is False, body
        scraped = await scrape(relay.ops.port)
        assert value(scraped, "relay_database_up") == 0
        (tmp_path / "relay.sqlite3").rmdir()


async def test_counters_catch_up_over_several_scrapes(make_settings, sink, monkeypatch):
    """A big existing archive is read a bounded number of pages per scrape: the totals
    lag, rise scrape by scrape, and never go down."""
    settings = make_settings(
        delivery={"smarthost": f"127.0.0.1:{sink.port}"}, metrics={"listen": "127.0.0.1:0"}
    )
    monkeypatch.setattr(metrics, "SETTLE", -1.0)
    monkeypatch.setattr(metrics, "PAGE", 2)
    monkeypatch.setattr(metrics, "MAX_PAGES", 1)
    async with running_relay(settings) as relay:
        order = await create_order(relay)
        data = message(BUYER, order.seller_alias).as_bytes()
        for _ in range(5):
            assert (await send(relay.port, BUYER, [order.seller_alias], data))[0] == 250
        seen = []
        for _ in range(4):
            scraped = await scrape(relay.ops.port)
            seen.append(
                (
                    value(
                        scraped,
                        "relay_messages_total",
                        kind="message",
                        verdict="deliver",
                        reason="",
                    ),
                    value(scraped, "relay_metrics_catching_up"),
                )
            )
    assert seen == [(2, 1), (4, 1), (5, 0), (5, 0)]
