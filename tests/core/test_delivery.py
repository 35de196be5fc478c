"""Delivery over real parts: aiosmtpd sinks, the loopback DNS server, SQLite/PostgreSQL.

Direct MX routing (preference, A fallback, null MX, NXDOMAIN), smarthost retries,
connection reuse, and workers running apart from the listener without ever delivering a
row twice. Failures and their notices are in test_bounces.py.
"""

from __future__ import annotations

import asyncio
import email
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from relay import archive, queue
from relay.db import read_tx
from relay.db.schema import delivery_events
from relay.delivery import transport
from relay.delivery.route import RouteError, Router, make_resolver
from relay.delivery.transport import Pool
from relay.delivery.transport import send as send_one
from relay.settings import DeliverySection, DnsSection
from tests.helpers import (
    DOMAIN,
    SELLER,
    BrokenTlsSink,
    CountingSink,
    HangingUpSink,
    HostSink,
    OneShotSink,
    SlowSink,
    all_status,
    assert_notice,
    buyer_dns,
    buyer_writes,
    delivery_rows,
    direct,
    event_names,
    make_order,
    make_tls_cert,
    notices,
    refuse,
    running_relay,
    smarthost,
    started,
    tls_sink,
    wait_until,
)
from tests.helpers import test_settings as settings_at  # not collected as a test


@pytest.fixture
def lite_settings(tmp_path: Path) -> Callable[..., Any]:
    """SQLite only, for tests of routing and SMTP transport that the database does not
    affect (the issue: "the database-facing ones also on PostgreSQL")."""

    def make(**sections: dict[str, Any]) -> Any:
        return settings_at(f"sqlite+aiosqlite:///{tmp_path}/relay.sqlite3", **sections)

    return make


# ---------------------------------------------------------------- direct MX


async def test_direct_mx_delivers_to_the_mx_host(make_settings, dns_server, sink) -> None:
    dns_server.add("shop.example", "MX", "10 mx1.shop.example.")
    dns_server.add("mx1.shop.example", "A", "127.0.0.1")
    async with running_relay(direct(make_settings, dns_server, sink), policy=None) as relay:
        order = await make_order(relay)
        await buyer_writes(relay, order)
        got = (await sink.wait_for(1))[0]
        assert got.rcpt_tos == [SELLER]
        assert got.mail_from.startswith("bounce+") and got.mail_from.endswith("@" + DOMAIN)
        rows = await wait_until(lambda: all_status(relay.engine, "delivered", 1))
        assert rows[0].attempts == 1
    assert ("shop.example.", "MX") in dns_server.queries


async def test_direct_mx_follows_preference_past_dead_hosts(
    lite_settings, dns_server, sink
) -> None:
    # Preference 5 has no address at all, 10 refuses connections, 20 is the sink.
    dns_server.add("shop.example", "MX", "20 mx-good.shop.example.")
    dns_server.add("shop.example", "MX", "5 mx-noaddr.shop.example.")
    dns_server.add("shop.example", "MX", "10 mx-dead.shop.example.")
    dns_server.add("mx-dead.shop.example", "A", "127.0.0.2")
    dns_server.add("mx-good.shop.example", "A", "127.0.0.1")
    async with running_relay(direct(lite_settings, dns_server, sink), policy=None) as relay:
        order = await make_order(relay)
        await buyer_writes(relay, order)
        got = (await sink.wait_for(1))[0]
        assert got.rcpt_tos == [SELLER]
        rows = await wait_until(lambda: all_status(relay.engine, "delivered", 1))
        assert rows[0].attempts == 1  # one attempt walked all three hosts
    looked_up = [name for name, rtype in dns_server.queries if rtype == "A"]
    assert looked_up.index("mx-noaddr.shop.example.") < looked_up.index("mx-dead.shop.example.")
    assert looked_up.index("mx-dead.shop.example.") < looked_up.index("mx-good.shop.example.")


async def test_direct_mx_falls_back_to_the_domain_address(lite_settings, dns_server, sink) -> None:
    dns_server.add("shop.example", "A", "127.0.0.1")  # no MX record at all
    async with running_relay(direct(lite_settings, dns_server, sink), policy=None) as relay:
        order = await make_order(relay)
        await buyer_writes(relay, order)
        assert (await sink.wait_for(1))[0].rcpt_tos == [SELLER]


async def test_null_mx_fails_at_once_with_a_notice(make_settings, dns_server, sink) -> None:
    dns_server.add("shop.example", "MX", "0 .")
    buyer_dns(dns_server)
    async with running_relay(direct(make_settings, dns_server, sink), policy=None) as relay:
        order = await make_order(relay)
        await buyer_writes(relay, order)
        got = (await sink.wait_for(1))[0]
        assert_notice(got, order)
        rows = await delivery_rows(relay.engine)
        assert rows[0].status == "failed" and rows[0].attempts == 1
        assert await event_names(relay.engine, rows[0].id) == ["failed"]
        await wait_until(lambda: all_status(relay.engine, None, 2, last="delivered"))


async def test_nxdomain_recipient_domain_fails(make_settings, dns_server, sink) -> None:
    buyer_dns(dns_server)
    settings = direct(make_settings, dns_server, sink)
    async with running_relay(settings, policy=None) as relay:
        order = await make_order(relay, seller="support@nowhere.example")
        await buyer_writes(relay, order)
        got = (await sink.wait_for(1))[0]
        assert_notice(got, order, secret="support@nowhere.example")
        rows = await delivery_rows(relay.engine)
        assert rows[0].status == "failed"
        assert rows[0].last_error == "recipient domain does not exist"


async def test_no_mx_and_no_address_fails(lite_settings, dns_server, sink) -> None:
    dns_server.add("shop.example", "TXT", "v=spf1 -all")  # the name exists, mail-less
    buyer_dns(dns_server)
    async with running_relay(direct(lite_settings, dns_server, sink), policy=None) as relay:
        order = await make_order(relay)
        await buyer_writes(relay, order)
        assert_notice((await sink.wait_for(1))[0], order)
        rows = await delivery_rows(relay.engine)
        assert rows[0].status == "failed"
        assert rows[0].last_error == "recipient domain has no mail server"


async def test_mx_hosts_without_address_defer(lite_settings, dns_server, sink) -> None:
    dns_server.add("shop.example", "MX", "10 gone.shop.example.")
    async with running_relay(direct(lite_settings, dns_server, sink), policy=None) as relay:
        order = await make_order(relay)
        await buyer_writes(relay, order)
        rows = await wait_until(lambda: all_status(relay.engine, "deferred", 1))
        assert rows[0].last_error == "no address for the mail exchangers"


async def test_dns_failure_defers_instead_of_failing(lite_settings, dns_server, sink) -> None:
    dns_server.fail("shop.example")
    async with running_relay(direct(lite_settings, dns_server, sink), policy=None) as relay:
        order = await make_order(relay)
        await buyer_writes(relay, order)
        rows = await wait_until(lambda: all_status(relay.engine, "deferred", 1))
        assert rows[0].last_error.startswith("DNS failure")
        with dns_server._lock:  # the DNS server recovers
            dns_server._fail.clear()
        dns_server.add("shop.example", "A", "127.0.0.1")
        assert (await sink.wait_for(1))[0].rcpt_tos == [SELLER]
        await wait_until(lambda: all_status(relay.engine, "delivered", 1))
        assert await event_names(relay.engine, rows[0].id) == ["deferred", "delivered"]


# ---------------------------------------------------------------- smarthost


async def test_4xx_defers_then_delivers_on_retry(make_settings, sink) -> None:
    sink.rcpt_reply = refuse(SELLER, "451 4.3.0 try later", times=1)
    async with running_relay(smarthost(make_settings, sink), policy=None) as relay:
        order = await make_order(relay)
        await buyer_writes(relay, order)
        got = (await sink.wait_for(1))[0]
        assert got.rcpt_tos == [SELLER]
        rows = await wait_until(lambda: all_status(relay.engine, "delivered", 1))
        assert rows[0].attempts == 2
        record = await archive.get_record(relay.engine, rows[0].archive_id)
        assert record is not None
        events = record["events"]
        assert [e["event"] for e in events] == ["deferred", "delivered"]
        assert events[0]["code"] == 451 and "try later" in events[0]["detail"]
        assert events[1]["code"] == 250
        assert await notices(relay.engine) == []


async def test_utf8_address_to_a_server_without_smtputf8_fails(sink) -> None:
    # Orders refuse such addresses today; the transport must still never loop on one.
    router = Router(
        DeliverySection(smarthost=f"127.0.0.1:{sink.port}"), make_resolver(DnsSection())
    )
    pool = Pool("relay.example", 5)
    try:
        data = b"Subject: x\r\n\r\nhi\r\n"
        outcome = await send_one(router, pool, "", "jörg@shop.example", data)
        assert (outcome.status, outcome.enhanced) == ("failed", "5.6.7")
        outcome = await send_one(router, pool, "", "plain@shop.example", data)
        assert outcome.status == "delivered"
        assert pool.opened == 1  # the refused transaction left the connection usable
    finally:
        await pool.close()


async def test_connection_refused_defers(lite_settings, sink) -> None:
    port = sink.port
    await sink.stop()
    settings = lite_settings(delivery={"smarthost": f"127.0.0.1:{port}"})
    async with running_relay(settings, policy=None) as relay:
        order = await make_order(relay)
        await buyer_writes(relay, order)
        rows = await wait_until(lambda: all_status(relay.engine, "deferred", 1))
        assert rows[0].last_error.startswith("connection failed")


# ---------------------------------------------------------------- connections, workers


async def test_connections_are_reused(make_settings) -> None:
    async with started(CountingSink()) as counting:
        settings = smarthost(make_settings, counting)
        async with running_relay(settings, worker=False, policy=None) as front:
            order = await make_order(front)
            for i in range(12):
                await buyer_writes(front, order, subject=f"burst {i}")
        # All twelve are due at once when the worker starts: a burst, not a trickle.
        async with running_relay(settings, smtp=False, policy=None):
            await counting.wait_for(12)
        assert 1 <= counting.connections < 12
        seen = counting.connections
        async with running_relay(settings, policy=None) as relay:
            for i in range(5):  # one at a time: the idle connection is taken again
                await buyer_writes(relay, order, subject=f"trickle {i}")
                await counting.wait_for(13 + i)
        assert counting.connections - seen == 1


async def test_worker_apart_from_the_listener(make_settings, sink) -> None:
    settings = smarthost(make_settings, sink)
    async with running_relay(settings, worker=False, policy=None) as front:
        order = await make_order(front)
        await buyer_writes(front, order)
        await asyncio.sleep(0.3)
        assert sink.messages == []
        (row,) = await delivery_rows(front.engine)
        assert row.status == "queued"
        async with running_relay(settings, smtp=False, policy=None) as back:
            assert back.server is None
            assert (await sink.wait_for(1))[0].rcpt_tos == [SELLER]
            await wait_until(lambda: all_status(front.engine, "delivered", 1))


async def test_two_workers_never_deliver_a_row_twice(make_settings, sink) -> None:
    settings = smarthost(make_settings, sink, batch=3, concurrency=4)
    count = 24
    async with (
        running_relay(settings, smtp=False, policy=None),
        running_relay(settings, smtp=False, policy=None),
        running_relay(settings, worker=False, policy=None) as front,
    ):
        order = await make_order(front)
        await asyncio.gather(
            *(buyer_writes(front, order, subject=f"message {i}") for i in range(count))
        )
        await sink.wait_for(count, timeout=20)
        rows = await wait_until(lambda: all_status(front.engine, "delivered", count))
    # Stopped: every send in flight has finished, so a duplicate would be in the sink.
    async with running_relay(settings, smtp=False, worker=False, policy=None) as front:
        assert len(sink.messages) == count
        subjects = sorted(email.message_from_bytes(m.data)["Subject"] for m in sink.messages)
        assert subjects == sorted(f"message {i}" for i in range(count))
        assert all(r.attempts == 1 for r in rows)
        async with read_tx(front.engine) as conn:
            workers = {r.claimed_by for r in rows}
            delivered = (
                await conn.execute(
                    sa.select(sa.func.count()).where(delivery_events.c.event == "delivered")
                )
            ).scalar_one()
        assert delivered == count and workers == {""}


async def test_a_connection_closed_by_the_server_costs_no_retry(lite_settings) -> None:
    async with started(HangingUpSink()) as hanging:
        async with running_relay(smarthost(lite_settings, hanging), policy=None) as relay:
            order = await make_order(relay)
            for i in range(3):
                await buyer_writes(relay, order, subject=f"m{i}")
                await hanging.wait_for(i + 1)
                await asyncio.sleep(0.1)
            rows = await wait_until(lambda: all_status(relay.engine, "delivered", 3))
            assert [r.attempts for r in rows] == [1, 1, 1]
        assert hanging.connections == 3


async def test_a_slow_send_keeps_its_lease(make_settings) -> None:
    async with started(SlowSink(delay=1.0)) as slow:  # more than twice the lease
        settings = smarthost(make_settings, slow, claim_lease="0.4s", poll_interval="0.1s")
        async with (
            running_relay(settings, smtp=False, policy=None),
            running_relay(settings, smtp=False, policy=None),
            running_relay(settings, worker=False, policy=None) as front,
        ):
            order = await make_order(front)
            await buyer_writes(front, order)
            rows = await wait_until(lambda: all_status(front.engine, "delivered", 1))
            assert rows[0].attempts == 1
        # Stopping let every in-flight send finish: a second claim would show up now.
        assert len(slow.messages) == 1


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
    cert, key = make_tls_cert(tmp_path)
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
            assert relay.worker.pool._no_tls  # the handshake was tried, and failed
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
    real = queue.record_many
    failures = [1]

    async def flaky(*args: Any, **kwargs: Any) -> list[bool]:
        if failures[0]:
            failures[0] -= 1
            raise ConnectionError("database went away")
        return await real(*args, **kwargs)

    monkeypatch.setattr(queue, "record_many", flaky)
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
