"""Delivery over real parts: aiosmtpd sinks, the loopback DNS server, SQLite/PostgreSQL.

Direct MX routing (preference, A fallback, null MX, NXDOMAIN), smarthost retries and
give-up with bounce notices that never name the recipient, connection reuse, and workers
running apart from the listener without ever delivering a row twice.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from aiosmtpd.smtp import SMTP, Envelope, Session

from relay import archive, orders
from relay.db import read_tx
from relay.db.schema import archive as archive_table
from relay.db.schema import deliveries, delivery_events
from relay.delivery.route import Router, make_resolver
from relay.delivery.transport import Pool
from relay.delivery.transport import send as send_one
from relay.settings import DeliverySection, DnsSection
from tests.helpers import BUYER, DOMAIN, ORDER, SELLER, Sink, message, running_relay, send

# ---------------------------------------------------------------- helpers (shared with
# test_bounces.py, which imports them from here)


@dataclass
class CountingSink(Sink):
    """A sink that counts SMTP connections (one EHLO per connection without STARTTLS)."""

    connections: int = 0

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list
    ) -> list[str]:
        self.connections += 1
        session.host_name = hostname
        return responses


async def make_order(relay: Any, *, seller: str = SELLER, order_id: str = ORDER) -> Any:
    return await orders.create_order(
        relay.engine,
        DOMAIN,
        order_id,
        buyer=BUYER,
        seller=seller,
        buyer_name="Alice",
        seller_name="Shop GmbH",
    )


async def buyer_writes(relay: Any, order: Any, subject: str = "Question about my order") -> None:
    """The buyer writes to the seller alias; the relay must answer 250."""
    data = message(BUYER, order.seller_alias, subject=subject).as_bytes()
    code, text = await send(relay.port, BUYER, [order.seller_alias], data)
    assert code == 250, text


async def delivery_rows(engine: Any) -> list[Any]:
    async with read_tx(engine) as conn:
        return list((await conn.execute(sa.select(deliveries).order_by(deliveries.c.id))).all())


async def event_names(engine: Any, delivery_id: int) -> list[str]:
    async with read_tx(engine) as conn:
        rows = await conn.execute(
            sa.select(delivery_events.c.event)
            .where(delivery_events.c.delivery_id == delivery_id)
            .order_by(delivery_events.c.id)
        )
        return [r.event for r in rows]


async def notices(engine: Any) -> list[Any]:
    async with read_tx(engine) as conn:
        q = sa.select(archive_table).where(archive_table.c.kind == "notice")
        return list((await conn.execute(q)).all())


async def wait_until(check: Callable[[], Awaitable[Any]], timeout: float = 10.0) -> Any:
    """Poll ``check`` until it returns something truthy; fail the test on timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.05)


def assert_notice(got: Any, order: Any, *, secret: str = SELLER) -> None:
    """A bounce notice: null return path, auto-replied, names order and alias, not the
    recipient's real address anywhere in its bytes."""
    assert got.mail_from in ("", "<>")  # aiosmtpd reports the null path as "<>"
    assert got.rcpt_tos == [BUYER]
    data = got.data
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert parsed["Auto-Submitted"] == "auto-replied"
    assert parsed["To"] == BUYER
    body = parsed.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert ORDER in body and ORDER in parsed["Subject"]
    assert order.seller_alias in body
    for text in (data.decode("utf-8", "replace").lower(), body.lower()):
        assert secret.lower() not in text
        assert secret.rpartition("@")[2].lower() not in text


def direct(make_settings: Any, dns_server: Any, sink: Any, **delivery: Any) -> Any:
    return make_settings(
        dns={"nameservers": ["127.0.0.1"], "port": dns_server.port, "timeout": "2s"},
        delivery={"smarthost": "", "mx_port": sink.port, **delivery},
    )


def smarthost(make_settings: Any, sink: Any, **delivery: Any) -> Any:
    return make_settings(delivery={"smarthost": f"127.0.0.1:{sink.port}", **delivery})


def buyer_dns(dns_server: Any) -> None:
    """The buyer's domain: no MX, an A record (notices go there by A fallback)."""
    dns_server.add("buyer.example", "A", "127.0.0.1")


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
        rows = await wait_until(lambda: _all_status(relay.engine, "delivered", 1))
        assert rows[0].attempts == 1
    assert ("shop.example.", "MX") in dns_server.queries


async def test_direct_mx_follows_preference_past_dead_hosts(
    make_settings, dns_server, sink
) -> None:
    # Preference 5 has no address at all, 10 refuses connections, 20 is the sink.
    dns_server.add("shop.example", "MX", "20 mx-good.shop.example.")
    dns_server.add("shop.example", "MX", "5 mx-noaddr.shop.example.")
    dns_server.add("shop.example", "MX", "10 mx-dead.shop.example.")
    dns_server.add("mx-dead.shop.example", "A", "127.0.0.2")
    dns_server.add("mx-good.shop.example", "A", "127.0.0.1")
    async with running_relay(direct(make_settings, dns_server, sink), policy=None) as relay:
        order = await make_order(relay)
        await buyer_writes(relay, order)
        got = (await sink.wait_for(1))[0]
        assert got.rcpt_tos == [SELLER]
        rows = await wait_until(lambda: _all_status(relay.engine, "delivered", 1))
        assert rows[0].attempts == 1  # one attempt walked all three hosts
    looked_up = [name for name, rtype in dns_server.queries if rtype == "A"]
    assert looked_up.index("mx-noaddr.shop.example.") < looked_up.index("mx-dead.shop.example.")
    assert looked_up.index("mx-dead.shop.example.") < looked_up.index("mx-good.shop.example.")


async def test_direct_mx_falls_back_to_the_domain_address(make_settings, dns_server, sink) -> None:
    dns_server.add("shop.example", "A", "127.0.0.1")  # no MX record at all
    async with running_relay(direct(make_settings, dns_server, sink), policy=None) as relay:
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
        await wait_until(lambda: _all_status(relay.engine, None, 2, last="delivered"))


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


async def test_no_mx_and_no_address_fails(make_settings, dns_server, sink) -> None:
    dns_server.add("shop.example", "TXT", "v=spf1 -all")  # the name exists, mail-less
    buyer_dns(dns_server)
    async with running_relay(direct(make_settings, dns_server, sink), policy=None) as relay:
        order = await make_order(relay)
        await buyer_writes(relay, order)
        assert_notice((await sink.wait_for(1))[0], order)
        rows = await delivery_rows(relay.engine)
        assert rows[0].status == "failed"
        assert rows[0].last_error == "recipient domain has no mail server"


async def test_mx_hosts_without_address_defer(make_settings, dns_server, sink) -> None:
    dns_server.add("shop.example", "MX", "10 gone.shop.example.")
    async with running_relay(direct(make_settings, dns_server, sink), policy=None) as relay:
        order = await make_order(relay)
        await buyer_writes(relay, order)
        rows = await wait_until(lambda: _all_status(relay.engine, "deferred", 1))
        assert rows[0].last_error == "no address for the mail exchangers"


async def test_dns_failure_defers_instead_of_failing(make_settings, dns_server, sink) -> None:
    dns_server.fail("shop.example")
    async with running_relay(direct(make_settings, dns_server, sink), policy=None) as relay:
        order = await make_order(relay)
        await buyer_writes(relay, order)
        rows = await wait_until(lambda: _all_status(relay.engine, "deferred", 1))
        assert rows[0].last_error.startswith("DNS failure")
        with dns_server._lock:  # the DNS server recovers
            dns_server._fail.clear()
        dns_server.add("shop.example", "A", "127.0.0.1")
        assert (await sink.wait_for(1))[0].rcpt_tos == [SELLER]
        await wait_until(lambda: _all_status(relay.engine, "delivered", 1))
        assert await event_names(relay.engine, rows[0].id) == ["deferred", "delivered"]


async def _all_status(
    engine: Any, status: str | None, count: int, *, last: str | None = None
) -> list[Any] | None:
    """The delivery rows once there are ``count`` of them in ``status`` (or, with
    ``last``, once the newest one is in that state)."""
    rows = await delivery_rows(engine)
    if len(rows) != count:
        return None
    if last is not None:
        return rows if rows[-1].status == last else None
    return rows if all(r.status == status for r in rows) else None


# ---------------------------------------------------------------- smarthost


def refuse(address: str, reply: str, times: int | None = None) -> Callable[[str], str | None]:
    """An rcpt_reply that answers ``reply`` for ``address`` (``times`` times, or always)."""
    left = [times]

    def answer(rcpt: str) -> str | None:
        if rcpt.lower() != address.lower() or left[0] == 0:
            return None
        if left[0] is not None:
            left[0] -= 1
        return reply

    return answer


async def test_4xx_defers_then_delivers_on_retry(make_settings, sink) -> None:
    sink.rcpt_reply = refuse(SELLER, "451 4.3.0 try later", times=1)
    async with running_relay(smarthost(make_settings, sink), policy=None) as relay:
        order = await make_order(relay)
        await buyer_writes(relay, order)
        got = (await sink.wait_for(1))[0]
        assert got.rcpt_tos == [SELLER]
        rows = await wait_until(lambda: _all_status(relay.engine, "delivered", 1))
        assert rows[0].attempts == 2
        record = await archive.get_record(relay.engine, rows[0].archive_id)
        assert record is not None
        events = record["events"]
        assert [e["event"] for e in events] == ["deferred", "delivered"]
        assert events[0]["code"] == 451 and "try later" in events[0]["detail"]
        assert events[1]["code"] == 250
        assert await notices(relay.engine) == []


async def test_5xx_fails_at_once_and_notifies_without_the_address(make_settings, sink) -> None:
    # The remote text quotes the recipient's address; the notice must not.
    sink.rcpt_reply = refuse(SELLER, f"550 5.1.1 <{SELLER}>: Recipient address rejected")
    async with running_relay(smarthost(make_settings, sink), policy=None) as relay:
        order = await make_order(relay)
        await buyer_writes(relay, order, subject="Where is my parcel?")
        got = (await sink.wait_for(1))[0]
        assert_notice(got, order)
        assert b"Where is my parcel?" in got.data
        assert b"no longer valid" in got.data  # explained from 5.1.1, not quoted
        rows = await wait_until(lambda: _all_status(relay.engine, None, 2, last="delivered"))
        assert rows[0].status == "failed" and rows[0].attempts == 1 and rows[0].last_code == 550
        assert rows[1].mail_from == "" and rows[1].rcpt == BUYER and not rows[1].notify
        record = await archive.get_record(relay.engine, rows[0].archive_id)
        assert [e["event"] for e in record["events"]] == ["failed"]  # type: ignore[index]
        (notice,) = await notices(relay.engine)
        assert notice.order_id == ORDER and notice.alias == order.seller_alias
        assert SELLER not in notice.delivered.decode()
        result = await archive.verify(relay.engine)
        assert result.ok and result.records == 2, result


async def test_data_5xx_fails_too(make_settings, sink) -> None:
    sink.data_reply = lambda data: "554 5.7.1 spam" if b"shop.example" in data else None
    async with running_relay(smarthost(make_settings, sink), policy=None) as relay:
        order = await make_order(relay)
        await buyer_writes(relay, order)
        assert_notice((await sink.wait_for(1))[0], order)
        rows = await delivery_rows(relay.engine)
        assert rows[0].status == "failed" and rows[0].last_code == 554


async def test_give_up_after_expires_with_a_notice(make_settings, sink) -> None:
    sink.rcpt_reply = refuse(SELLER, "451 4.2.0 mailbox busy")
    settings = smarthost(make_settings, sink, give_up_after="2s", retry=["1s"])
    async with running_relay(settings, policy=None) as relay:
        order = await make_order(relay)
        await buyer_writes(relay, order)
        got = (await sink.wait_for(1, timeout=15))[0]
        assert_notice(got, order)
        assert b"several days" not in got.data or b"could not be reached" in got.data
        rows = await delivery_rows(relay.engine)
        assert rows[0].status == "failed" and rows[0].attempts >= 2
        names = await event_names(relay.engine, rows[0].id)
        assert names[-1] == "expired" and set(names[:-1]) == {"deferred"}
        assert rows[0].last_error.startswith("expired:")


async def test_a_failed_notice_creates_no_further_notice(make_settings, sink) -> None:
    sink.rcpt_reply = lambda rcpt: "550 5.1.1 no such user"
    async with running_relay(smarthost(make_settings, sink), policy=None) as relay:
        order = await make_order(relay)
        await buyer_writes(relay, order)
        rows = await wait_until(lambda: _all_status(relay.engine, "failed", 2))
        await asyncio.sleep(0.5)  # a third row would have appeared by now
        assert len(await delivery_rows(relay.engine)) == 2
        assert rows[1].mail_from == "" and rows[1].rcpt == BUYER
        assert len(await notices(relay.engine)) == 1
        assert sink.messages == []
        assert (await archive.verify(relay.engine)).ok


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


async def test_connection_refused_defers(make_settings, sink) -> None:
    port = sink.port
    await sink.stop()
    settings = make_settings(delivery={"smarthost": f"127.0.0.1:{port}"})
    async with running_relay(settings, policy=None) as relay:
        order = await make_order(relay)
        await buyer_writes(relay, order)
        rows = await wait_until(lambda: _all_status(relay.engine, "deferred", 1))
        assert rows[0].last_error.startswith("connection failed")


# ---------------------------------------------------------------- connections, workers


async def test_connections_are_reused(make_settings) -> None:
    counting = CountingSink()
    await counting.start()
    try:
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
    finally:
        await counting.stop()


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
            await wait_until(lambda: _all_status(front.engine, "delivered", 1))


async def test_two_workers_never_deliver_a_row_twice(make_settings, sink) -> None:
    settings = smarthost(make_settings, sink, batch=3, concurrency=4)
    count = 30
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
        rows = await wait_until(lambda: _all_status(front.engine, "delivered", count))
        await asyncio.sleep(0.5)  # a duplicate would arrive now
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


@dataclass
class HangingUpSink(CountingSink):
    """Closes every connection shortly after a message: pooled connections go stale."""

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        reply = await super().handle_DATA(server, session, envelope)
        asyncio.get_running_loop().call_later(0.05, server.transport.close)  # type: ignore[union-attr]
        return reply


async def test_a_connection_closed_by_the_server_costs_no_retry(make_settings) -> None:
    hanging = HangingUpSink()
    await hanging.start()
    try:
        async with running_relay(smarthost(make_settings, hanging), policy=None) as relay:
            order = await make_order(relay)
            for i in range(3):
                await buyer_writes(relay, order, subject=f"m{i}")
                await hanging.wait_for(i + 1)
                await asyncio.sleep(0.1)
            rows = await wait_until(lambda: _all_status(relay.engine, "delivered", 3))
            assert [r.attempts for r in rows] == [1, 1, 1]
        assert hanging.connections == 3
    finally:
        await hanging.stop()


@dataclass
class SlowSink(Sink):
    """Takes its time over DATA: longer than the workers' claim lease."""

    delay: float = 1.5

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        await asyncio.sleep(self.delay)
        return await super().handle_DATA(server, session, envelope)


async def test_a_slow_send_keeps_its_lease(make_settings) -> None:
    slow = SlowSink()
    await slow.start()
    try:
        settings = smarthost(make_settings, slow, claim_lease="0.6s", poll_interval="0.1s")
        async with (
            running_relay(settings, smtp=False, policy=None),
            running_relay(settings, smtp=False, policy=None),
            running_relay(settings, worker=False, policy=None) as front,
        ):
            order = await make_order(front)
            await buyer_writes(front, order)
            rows = await wait_until(lambda: _all_status(front.engine, "delivered", 1))
            assert rows[0].attempts == 1
        # Stopping let every in-flight send finish: a second claim would show up now.
        assert len(slow.messages) == 1
    finally:
        await slow.stop()
