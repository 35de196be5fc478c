"""SMTP hardening over real loopback sessions: limits, smuggling, injection, our own faults."""

from __future__ import annotations

import asyncio
import smtplib

import pytest

from relay.db import create_engine
from relay.store import orders
from tests.helpers import (
    BUYER,
    DOMAIN,
    ORDER,
    SELLER,
    create_order,
    make_cert,
    message,
    running_relay,
    send,
)


class RawClient:
    """A byte-exact SMTP client: smtplib would repair the bare line endings we test."""

    def __init__(self, port: int) -> None:
        self.port = port

    async def __aenter__(self) -> RawClient:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        await self.reply()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.writer.close()

    async def reply(self) -> str:
        lines = []
        while True:
            line = (await asyncio.wait_for(self.reader.readline(), 10)).decode()
            lines.append(line.rstrip("\r\n"))
            if len(line) < 4 or line[3] != "-":
                return "\n".join(lines)

    async def cmd(self, line: bytes) -> str:
        self.writer.write(line + b"\r\n")
        return await self.reply()

    async def transaction(self, sender: str, rcpt: str, data: bytes) -> str:
        assert (await self.cmd(b"EHLO client.test")).startswith("250")
        assert (await self.cmd(f"MAIL FROM:<{sender}>".encode())).startswith("250")
        assert (await self.cmd(f"RCPT TO:<{rcpt}>".encode())).startswith("250")
        assert (await self.cmd(b"DATA")).startswith("354")
        self.writer.write(data + b"\r\n.\r\n")
        return await self.reply()


@pytest.fixture
async def relay_order(make_settings, sink):  # type: ignore[no-untyped-def]
    settings = make_settings(
        delivery={"smarthost": f"127.0.0.1:{sink.port}"},
        smtp={"max_message_size": 200_000, "max_recipients": 3},
    )
    async with running_relay(settings, policy=None) as relay:
        order = await create_order(relay, buyer_name="Alice", seller_name="Shop")
        yield relay, order


def _head(sender: str, to: str, extra: bytes = b"") -> bytes:
    return (
        f"From: {sender}\r\nTo: {to}\r\nSubject: test\r\n".encode()
        + extra
        + b"Message-ID: <m1@buyer.example>\r\n\r\n"
    )


async def test_ehlo_advertises_size_and_8bitmime(relay_order) -> None:
    relay, _ = relay_order
    async with RawClient(relay.port) as c:
        ehlo = await c.cmd(b"EHLO client.test")
    assert "SIZE 200000" in ehlo and "8BITMIME" in ehlo


async def test_size_limit_answers_552_534(relay_order, sink) -> None:
    relay, order = relay_order
    big = _head(BUYER, order.seller_alias) + (b"x" * 70 + b"\r\n") * 4000
    async with RawClient(relay.port) as c:
        reply = await c.transaction(BUYER, order.seller_alias, big)
        assert reply.startswith("552 5.3.4")
        # The session survives and the next transaction works.
        ok = await c.transaction(
            BUYER, order.seller_alias, _head(BUYER, order.seller_alias) + b"hi"
        )
        assert ok.startswith("250 2.0.0")
    async with RawClient(relay.port) as c:
        await c.cmd(b"EHLO client.test")
        assert (await c.cmd(b"MAIL FROM:<a@buyer.example> SIZE=900000")).startswith("552 5.3.4")


@pytest.mark.parametrize(
    "body",
    [
        b"line one\nBcc: victim@example.org\r\n",
        b"bare\rCR\r\n",
        b"nul\x00byte\r\n",
        b"smuggle\n.\r\nMAIL FROM:<x@evil.example>\r\n",
    ],
    ids=["bare-lf", "bare-cr", "nul", "smuggling"],
)
async def test_bare_line_endings_and_nul_are_refused(relay_order, sink, body: bytes) -> None:
    relay, order = relay_order
    async with RawClient(relay.port) as c:
        reply = await c.transaction(
            BUYER, order.seller_alias, _head(BUYER, order.seller_alias) + body
        )
    assert reply.startswith("554 5.6.0"), reply
    await asyncio.sleep(0.3)
    assert sink.messages == []


async def test_header_injection_via_bare_lf_in_subject(relay_order, sink) -> None:
    relay, order = relay_order
    data = (
        f"From: {BUYER}\r\nTo: {order.seller_alias}\r\nSubject: a\nBcc: x@example.org\r\n\r\nhi"
    ).encode()
    async with RawClient(relay.port) as c:
        assert (await c.transaction(BUYER, order.seller_alias, data)).startswith("554 5.6.0")


async def test_two_from_headers_are_refused(relay_order) -> None:
    relay, order = relay_order
    data = _head(BUYER, order.seller_alias, b"From: other@evil.example\r\n") + b"hi"
    async with RawClient(relay.port) as c:
        assert (await c.transaction(BUYER, order.seller_alias, data)).startswith("554 5.6.0")


async def test_mail_loop_is_refused(relay_order) -> None:
    relay, order = relay_order
    hops = b"".join(
        b"Received: from hop%d.example by x; Fri, 27 Nov 2026 10:00:00 +0000\r\n" % i
        for i in range(31)
    )
    async with RawClient(relay.port) as c:
        reply = await c.transaction(
            BUYER, order.seller_alias, hops + _head(BUYER, order.seller_alias) + b"hi"
        )
    assert reply.startswith("554 5.4.6")


async def test_recipient_cap_and_outsiders_at_rcpt(relay_order) -> None:
    relay, order = relay_order
    async with RawClient(relay.port) as c:
        await c.cmd(b"EHLO client.test")
        await c.cmd(f"MAIL FROM:<{BUYER}>".encode())
        assert (await c.cmd(b"RCPT TO:<friend@elsewhere.example>")).startswith("550 5.7.1")
        for _ in range(3):
            assert (await c.cmd(f"RCPT TO:<{order.seller_alias}>".encode())).startswith("250")
        assert (await c.cmd(f"RCPT TO:<{order.seller_alias}>".encode())).startswith("452 4.5.3")


async def test_several_alias_recipients_each_get_a_record_and_delivery(make_settings, sink) -> None:
    settings = make_settings(delivery={"smarthost": f"127.0.0.1:{sink.port}"})
    async with running_relay(settings, policy=None) as relay:
        o1 = await create_order(relay)
        o2 = await orders.create_order(
            relay.engine,
            DOMAIN,
            "113-0000000-0000002",
            buyer=BUYER,
            seller="sales@other-shop.example",
        )
        data = message(BUYER, o1.seller_alias).as_bytes()
        code, _ = await send(relay.port, BUYER, [o1.seller_alias, o2.seller_alias], data)
        assert code == 250
        got = await sink.wait_for(2)
        assert sorted(m.rcpt_tos[0] for m in got) == sorted([SELLER, "sales@other-shop.example"])
        from relay.store.archive import SearchFilter, search

        rows = await search(relay.engine, SearchFilter())
        assert sorted(r["order_id"] for r in rows) == sorted([ORDER, "113-0000000-0000002"])


async def test_database_down_answers_451_never_5xx(make_settings, sink) -> None:
    settings = make_settings(delivery={"smarthost": f"127.0.0.1:{sink.port}"})
    async with running_relay(settings, policy=None) as relay:
        order = await create_order(relay)
        # The store goes away: nothing listens on port 1.
        down = create_engine("postgresql+asyncpg://relay@127.0.0.1:1/relay")
        data = message(BUYER, order.seller_alias).as_bytes()
        relay.committer.engine = down  # RCPT still resolves; the commit after DATA fails
        code, text = await send(relay.port, BUYER, [order.seller_alias], data)
        assert code == 451 and text.startswith("4.3.0"), text
        relay.handler.pipeline.engine = down  # now RCPT cannot resolve either
        code, text = await send(relay.port, BUYER, [order.seller_alias], data)
        assert code == 451 and text.startswith("4.3.0"), text
        assert "Error" not in text and "postgres" not in text.lower() and "Traceback" not in text
        await down.dispose()
        assert sink.messages == []


async def test_smtplib_client_round_trip(make_settings, sink) -> None:
    """The stdlib client, in a thread, against the relay on the test's loop."""
    settings = make_settings(delivery={"smarthost": f"127.0.0.1:{sink.port}"})
    async with running_relay(settings, policy=None) as relay:
        order = await create_order(relay)

        def client() -> dict:
            with smtplib.SMTP("127.0.0.1", relay.port, timeout=10) as s:
                return s.sendmail(
                    BUYER, [order.seller_alias], message(BUYER, order.seller_alias).as_bytes()
                )

        assert await asyncio.to_thread(client) == {}
        assert (await sink.wait_for(1))[0].rcpt_tos == [SELLER]


async def test_starttls_when_a_certificate_is_configured(make_settings, sink, tmp_path) -> None:
    import aiosmtplib

    cert, key = make_cert(tmp_path)
    settings = make_settings(
        delivery={"smarthost": f"127.0.0.1:{sink.port}"},
        smtp={"tls_cert": str(cert), "tls_key": str(key)},
    )
    async with running_relay(settings, policy=None) as relay:
        order = await create_order(relay)
        client = aiosmtplib.SMTP(
            hostname="127.0.0.1", port=relay.port, start_tls=True, validate_certs=False, timeout=10
        )
        await client.connect()
        assert client.get_transport_info("ssl_object") is not None  # the session is encrypted
        await client.sendmail(
            BUYER, [order.seller_alias], message(BUYER, order.seller_alias).as_bytes()
        )
        await client.quit()
        assert (await sink.wait_for(1))[0].rcpt_tos == [SELLER]


async def test_second_starttls_inside_tls_is_503(make_settings, tmp_path) -> None:
    import ssl

    cert, key = make_cert(tmp_path)
    settings = make_settings(smtp={"tls_cert": str(cert), "tls_key": str(key)})
    async with running_relay(settings, policy=None, worker=False) as relay:
        async with RawClient(relay.port) as c:
            assert "STARTTLS" in await c.cmd(b"EHLO client.test")
            assert (await c.cmd(b"STARTTLS")).startswith("220")
            ctx = ssl.create_default_context()
            ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
            await c.writer.start_tls(ctx)
            ehlo = await c.cmd(b"EHLO client.test")
            assert "STARTTLS" not in ehlo
            assert (await c.cmd(b"STARTTLS")).startswith("503 5.5.1")
            # the session goes on, encrypted
            assert (await c.cmd(b"NOOP")).startswith("250 2.0.0")


async def test_every_reply_has_an_enhanced_code_and_auth_is_not_offered(relay_order) -> None:
    relay, _ = relay_order
    async with RawClient(relay.port) as c:
        assert (await c.cmd(b"MAIL FROM:<a@b.example>")).startswith("503 5.5.1")
        ehlo = await c.cmd(b"EHLO client.test")
        assert "ENHANCEDSTATUSCODES" in ehlo and "AUTH" not in ehlo, ehlo
        assert (await c.cmd(b"AUTH PLAIN AGFhAGI=")).startswith("502 5.5.1")
        assert (await c.cmd(b"FOO bar")).startswith("500 5.5.2")
        assert (await c.cmd(b"RCPT TO:<x@relay.example>")).startswith("503 5.5.1")
        assert (await c.cmd(b"VRFY <x@relay.example>")).startswith("252 2.5.0")
        assert (await c.cmd(b"QUIT")).startswith("221 2.0.0")


async def test_smtputf8_envelope(relay_order, sink) -> None:
    """RFC 6531: advertised; UTF-8 addresses with the SMTPUTF8 parameter are served, a
    UTF-8 local part at the relay domain gets the ordinary answer, and bytes that are not
    UTF-8 get a syntax error, never an internal one."""
    relay, order = relay_order
    async with RawClient(relay.port) as c:
        assert "SMTPUTF8" in await c.cmd(b"EHLO client.test")
        sender = "jürgen.müller@bücher.example"
        # without the parameter a non-ASCII address is refused (RFC 6531 3.4)
        assert (await c.cmd(f"MAIL FROM:<{sender}>".encode())).startswith("553 5.6.7")
        assert (await c.cmd(b"MAIL FROM:<\xff\xfe@x.example> SMTPUTF8")).startswith("501 5.5.2")
        reply = await c.cmd(f"MAIL FROM:<{sender}> SMTPUTF8 BODY=8BITMIME".encode())
        assert reply.startswith("250"), reply
        assert (await c.cmd(f"RCPT TO:<алиса@{DOMAIN}>".encode())).startswith("550 5.1.1")
        assert (await c.cmd(f"RCPT TO:<{order.seller_alias}>".encode())).startswith("250")
        assert (await c.cmd(b"DATA")).startswith("354")
        c.writer.write(_head(BUYER, order.seller_alias) + "Grüße\r\n".encode() + b"\r\n.\r\n")
        reply = await c.reply()
        assert reply.startswith("250 2.0.0"), reply
    got = await sink.wait_for(1)
    assert got[0].rcpt_tos == [SELLER]
