"""Delivery transport details over real parts: smarthost TLS and AUTH, opportunistic
STARTTLS on direct MX, MX fallbacks, the connection pool, and the worker's recording
under database trouble."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from relay.delivery import transport
from relay.delivery.route import RouteError, Router, make_resolver
from relay.delivery.transport import Pool
from relay.delivery.transport import send as send_one
from relay.settings import DeliverySection, DnsSection
from relay.store import queue
from tests.delivery_support import (
    BrokenTlsSink,
    HostSink,
    OneShotSink,
    SlowSink,
    all_status,
    buyer_writes,
    direct,
    make_order,
    refuse,
    smarthost,
    started,
    tls_sink,
    wait_until,
)
from tests.helpers import SELLER, make_cert, running_relay

# ---------------------------------------------------------------- smarthost TLS and AUTH


async def test_smarthost_starttls_with_auth(lite_settings, tmp_path, monkeypatch) -> None:
    async with started(tls_sink(tmp_path, "starttls", {"relay": "s3cret"})) as tls:
        monkeypatch.setenv("SSL_CERT_FILE", str(tls.cert))  # trust the sink's certificate
        settings = smarthost(
            lite_settings,
            tls,
            smarthost_tls="starttls",
            smarthost_username="relay",
            smarthost_password="s3cret",
        )
        async with running_relay(settings, policy=None) as relay:
            order = await make_order(relay)
            await buyer_writes(relay, order)
            await tls.wait_for(1)
            await buyer_writes(relay, order)  # after the first: its connection is reused
            await tls.wait_for(2)
            assert tls.secure == [True, True] and tls.logins == ["relay"]  # one login


async def test_smarthost_implicit_tls(lite_settings, tmp_path, monkeypatch) -> None:
    async with started(tls_sink(tmp_path, "implicit")) as tls:
        monkeypatch.setenv("SSL_CERT_FILE", str(tls.cert))
        settings = smarthost(lite_settings, tls, smarthost_tls="implicit")
        async with running_relay(settings, policy=None) as relay:
            await buyer_writes(relay, await make_order(relay))
            await tls.wait_for(1)
            assert tls.secure == [True]


async def test_smarthost_trouble_defers_and_never_bounces(
    lite_settings, tmp_path, monkeypatch
) -> None:
    """A wrong password or an untrusted certificate is our problem: defer, keep the mail."""
    async with started(tls_sink(tmp_path, "starttls", {"relay": "s3cret"})) as tls:
        wrong = dict(smarthost_tls="starttls", smarthost_username="relay", smarthost_password="x")
        monkeypatch.setenv("SSL_CERT_FILE", str(tls.cert))
        async with running_relay(smarthost(lite_settings, tls, **wrong), policy=None) as relay:
            order = await make_order(relay)
            await buyer_writes(relay, order)
            rows = await wait_until(lambda: all_status(relay.engine, "deferred", 1))
            assert "Authentication" in rows[0].last_error
        monkeypatch.delenv("SSL_CERT_FILE")
        monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path / "none"))
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "none.pem"))
        right = dict(wrong, smarthost_password="s3cret")
        async with running_relay(smarthost(lite_settings, tls, **right), policy=None) as relay:

            async def retried() -> list[Any] | None:
                rows = await all_status(relay.engine, "deferred", 1)
                return rows if rows and rows[0].attempts >= 2 else None

            rows = await wait_until(retried)
            assert rows[0].last_error.startswith("connection failed")
        assert tls.messages == [] and tls.logins == []


async def test_direct_mx_uses_starttls_without_checking_the_certificate(
    lite_settings, dns_server, tmp_path
) -> None:
    # Self-signed and not trusted: opportunistic TLS uses it all the same.
    async with started(tls_sink(tmp_path, "starttls")) as tls:
        dns_server.add("shop.example", "A", "127.0.0.1")
        async with running_relay(direct(lite_settings, dns_server, tls), policy=None) as relay:
            await buyer_writes(relay, await make_order(relay))
            await tls.wait_for(1)
            assert tls.secure == [True]


async def test_direct_mx_falls_back_to_plaintext_when_starttls_breaks(
    lite_settings, dns_server, tmp_path
) -> None:
    cert, key = make_cert(tmp_path)
    async with started(BrokenTlsSink(cert=cert, key=key)) as broken:
        dns_server.add("shop.example", "A", "127.0.0.1")
        settings = direct(lite_settings, dns_server, broken)
        async with running_relay(settings, policy=None) as relay:
            order = await make_order(relay)
            await buyer_writes(relay, order)
            await broken.wait_for(1)
            await buyer_writes(relay, order)  # remembered: straight to plaintext
            await broken.wait_for(2)
            assert broken.secure == [False, False]
            assert relay.worker.transport.pool._no_tls  # the handshake was tried, and failed
            rows = await wait_until(lambda: all_status(relay.engine, "delivered", 2))
            assert [r.attempts for r in rows] == [1, 1]


async def test_a_temporary_refusal_moves_on_to_the_next_mx(lite_settings, dns_server, sink) -> None:
    sink.rcpt_reply = refuse(SELLER, "451 4.7.1 greylisted")
    async with started(HostSink(host="127.0.0.2", port=sink.port)) as backup:
        dns_server.add("shop.example", "MX", "10 mx1.shop.example.")
        dns_server.add("shop.example", "MX", "20 mx2.shop.example.")
        dns_server.add("mx1.shop.example", "A", "127.0.0.1")
        dns_server.add("mx2.shop.example", "A", "127.0.0.2")
        async with running_relay(direct(lite_settings, dns_server, sink), policy=None) as relay:
            await buyer_writes(relay, await make_order(relay))
            assert (await backup.wait_for(1))[0].rcpt_tos == [SELLER]
            rows = await wait_until(lambda: all_status(relay.engine, "delivered", 1))
            assert rows[0].attempts == 1 and sink.messages == []


async def test_a_dns_timeout_defers(lite_settings, dns_server, sink) -> None:
    dns_server.drop("shop.example")
    settings = direct(lite_settings, dns_server, sink)
    settings = settings.model_copy(
        update={"dns": settings.dns.model_copy(update={"timeout": timedelta(seconds=0.5)})}
    )
    async with running_relay(settings, policy=None) as relay:
        await buyer_writes(relay, await make_order(relay))
        rows = await wait_until(lambda: all_status(relay.engine, "deferred", 1))
        assert rows[0].last_error.startswith("DNS failure")


async def test_routing_verdicts_straight_from_the_router(dns_server) -> None:
    dns_server.add("shop.example", "MX", "10 mx.shop.example.")
    dns_server.add("mx.shop.example", "A", "127.0.0.1")
    dns_server.add("mx.shop.example", "A", "127.0.0.1")
    dns_server.fail("broken.example")
    dns = DnsSection(nameservers=["127.0.0.1"], port=dns_server.port, timeout=timedelta(seconds=1))
    router = Router(DeliverySection(mx_port=2525), make_resolver(dns))
    (target,) = await router.targets("someone@SHOP.example.")
    assert (target.host, target.port, target.hostname) == ("127.0.0.1", 2525, "mx.shop.example")
    verdicts = {}
    for rcpt in ("a@" + "x" * 70 + ".example", "a@a..b.example", "a@broken.example"):
        with pytest.raises(RouteError) as caught:
            await router.targets(rcpt)
        verdicts[rcpt.rpartition("@")[2][:6]] = caught.value.permanent
    assert verdicts == {"xxxxxx": True, "a..b.e": True, "broken": False}


async def test_a_421_on_a_reused_connection_retries_at_once(lite_settings) -> None:
    async with started(OneShotSink()) as oneshot:
        async with running_relay(smarthost(lite_settings, oneshot), policy=None) as relay:
            order = await make_order(relay)
            for i in range(2):
                await buyer_writes(relay, order, subject=f"m{i}")
                await oneshot.wait_for(i + 1)
            rows = await wait_until(lambda: all_status(relay.engine, "delivered", 2))
            assert [r.attempts for r in rows] == [1, 1]
        assert oneshot.connections == 2


async def test_the_pool_forgets_idle_connections_and_hosts(sink, monkeypatch) -> None:
    router = Router(
        DeliverySection(smarthost=f"127.0.0.1:{sink.port}"), make_resolver(DnsSection())
    )
    pool = Pool("relay.example", 5)
    try:
        outcome = await send_one(router, pool, "", SELLER, b"Subject: x\r\n\r\nhi\r\n")
        assert outcome.status == "delivered"
        assert pool._gates == {} and len(pool._idle[("127.0.0.1", sink.port)]) == 1
        pool.prune()  # not idle long enough yet
        assert len(pool._idle[("127.0.0.1", sink.port)]) == 1
        monkeypatch.setattr(transport, "MAX_IDLE_SECONDS", 0.0)
        pool.prune()
        assert pool._idle == {} and len(pool._closing) == 1  # QUIT runs in the background
        await pool.close()
        assert pool._closing == set()
    finally:
        await pool.close()


async def test_a_database_blip_while_recording_sends_nothing_twice(
    lite_settings, sink, monkeypatch
) -> None:
    real = queue.settle
    failures = [1]

    async def flaky(*args: Any, **kwargs: Any) -> list[bool]:
        if failures[0]:
            failures[0] -= 1
            raise ConnectionError("database went away")
        return await real(*args, **kwargs)

    monkeypatch.setattr(queue, "settle", flaky)
    async with running_relay(smarthost(lite_settings, sink), policy=None) as relay:
        await buyer_writes(relay, await make_order(relay))
        rows = await wait_until(lambda: all_status(relay.engine, "delivered", 1))
        assert rows[0].attempts == 1 and failures == [0]
        await asyncio.sleep(1.2)  # the retry schedule (1 s) a wrong "deferred" would use
    assert len(sink.messages) == 1


async def test_a_stalled_renewal_never_makes_a_worker_resend_its_own_row(
    lite_settings, monkeypatch
) -> None:
    async def stalled(*args: Any, **kwargs: Any) -> int:  # the database is too busy
        return 0

    monkeypatch.setattr(queue, "renew", stalled)
    async with started(SlowSink(delay=1.0)) as slow:
        settings = smarthost(lite_settings, slow, claim_lease="0.3s", poll_interval="0.1s")
        async with running_relay(settings, policy=None) as relay:
            await buyer_writes(relay, await make_order(relay))
            rows = await wait_until(lambda: all_status(relay.engine, "delivered", 1))
            assert rows[0].attempts == 1
        assert len(slow.messages) == 1
