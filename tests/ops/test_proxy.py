"""PROXY protocol v2 over loopback: the real client address reaches the sender check (the
SPF seam) and the archive; other sources and headerless connections are closed."""

from __future__ import annotations

import asyncio
import ipaddress
import struct
from typing import Any

import sqlalchemy as sa

from relay.pipeline import registered_sender
from relay.store.tables import archive
from tests.helpers import BUYER, create_order, message, running_relay

SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def proxy_v2(src: str, sport: int, dst: str = "127.0.0.1", dport: int = 25) -> bytes:
    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    if s.version == 4:
        fam, body = 0x11, struct.pack("!4s4sHH", s.packed, d.packed, sport, dport)
    else:
        fam, body = 0x21, struct.pack("!16s16sHH", s.packed, d.packed, sport, dport)
    return SIGNATURE + bytes([0x21, fam]) + struct.pack("!H", len(body)) + body


PROXY_LOCAL = SIGNATURE + bytes([0x20, 0x00]) + struct.pack("!H", 0)


async def session(port: int, header: bytes, lines: list[bytes]) -> list[str]:
    """Send the header, then each line, collecting the replies (banner first)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(header)
        replies = [(await asyncio.wait_for(reader.readline(), 10)).decode()]
        for line in lines:
            writer.write(line + b"\r\n")
            out = b""
            while True:
                got = await asyncio.wait_for(reader.readline(), 10)
                out += got
                if len(got) < 4 or got[3:4] != b"-":
                    break
            replies.append(out.decode())
        return replies
    finally:
        writer.close()


async def closed_unanswered(reader: asyncio.StreamReader) -> bool:
    """The server closed the connection (FIN or RST) without sending a byte."""
    try:
        return await asyncio.wait_for(reader.read(), 10) == b""
    except ConnectionResetError:
        return True


def proxied(make_settings: Any, networks: list[str]) -> Any:
    return make_settings(smtp={"proxy_protocol": True, "proxy_networks": networks})


async def test_client_address_from_proxy_v2_header(make_settings) -> None:
    seen: list[str] = []

    async def spf_seam(inbound, info, res, sender):  # type: ignore[no-untyped-def]
        seen.append(info.client_ip)
        return await registered_sender(inbound, info, res, sender)

    settings = proxied(make_settings, ["127.0.0.0/8", "::1/128"])
    async with running_relay(settings, worker=False, authenticator=spf_seam) as relay:
        order = await create_order(relay)
        alias = order.seller_alias
        data = message(BUYER, alias).as_bytes()
        for client in ("203.0.113.7", "2001:db8::25"):
            replies = await session(
                relay.port,
                proxy_v2(client, 40025),
                [
                    b"EHLO mx.buyer.example",
                    f"MAIL FROM:<{BUYER}>".encode(),
                    f"RCPT TO:<{alias}>".encode(),
                    b"DATA",
                    data + b"\r\n.",
                    b"QUIT",
                ],
            )
            assert replies[0].startswith("220") and replies[5].startswith("250 2.0.0"), replies
        async with relay.engine.connect() as conn:
            ips = (await conn.execute(sa.select(archive.c.client_ip))).scalars().all()
        # a balancer's own health check (LOCAL) gets a banner and keeps its address
        replies = await session(relay.port, PROXY_LOCAL, [b"QUIT"])
        assert replies[0].startswith("220") and replies[1].startswith("221"), replies
    assert seen == ["203.0.113.7", "2001:db8::25"]
    assert sorted(ips) == ["2001:db8::25", "203.0.113.7"]


async def test_header_refused_from_other_networks_and_required_from_ours(make_settings) -> None:
    async with running_relay(proxied(make_settings, ["10.0.0.0/8"]), worker=False) as relay:
        reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
        writer.write(proxy_v2("203.0.113.7", 1234))
        # closed without a banner: loopback is not one of our balancers
        assert await closed_unanswered(reader)
        writer.close()
    async with running_relay(proxied(make_settings, ["127.0.0.1/32"]), worker=False) as relay:
        reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
        writer.write(b"EHLO client.test\r\n")  # no header from an allowed balancer: closed
        assert await closed_unanswered(reader)
        writer.close()
        # PROXY v1 works too
        replies = await session(
            relay.port, b"PROXY TCP4 198.51.100.9 127.0.0.1 4000 25\r\n", [b"EHLO x.test"]
        )
        assert replies[0].startswith("220") and replies[1].startswith("250"), replies


async def test_without_proxy_protocol_a_header_is_just_bad_syntax(make_settings) -> None:
    async with running_relay(make_settings(), worker=False) as relay:
        reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
        assert (await reader.readline()).startswith(b"220")
        writer.write(b"PROXY TCP4 198.51.100.9 127.0.0.1 4000 25\r\n")
        assert (await reader.readline()).startswith(b"500")
        writer.close()


async def test_xforward_from_a_trusted_postfix(make_settings) -> None:
    """Postfix in front (smtpd_proxy_filter) forwards its client's address and HELO."""
    seen: list[tuple[str, str]] = []

    async def spf_seam(inbound, info, res, sender):  # type: ignore[no-untyped-def]
        seen.append((info.client_ip, info.helo))
        return await registered_sender(inbound, info, res, sender)

    settings = make_settings(smtp={"xforward": True, "proxy_networks": ["127.0.0.0/8"]})
    async with running_relay(settings, worker=False, authenticator=spf_seam) as relay:
        order = await create_order(relay)
        alias = order.seller_alias
        replies = await session(
            relay.port,
            b"",
            [
                b"EHLO postfix.relay.example",
                b"XFORWARD NAME=mx.buyer.example ADDR=IPV6:2001:db8::7 PORT=4711",
                b"XFORWARD HELO=mx.buyer.example PROTO=ESMTP SOURCE=REMOTE",
                f"MAIL FROM:<{BUYER}>".encode(),
                b"XFORWARD ADDR=192.0.2.1",
                f"RCPT TO:<{alias}>".encode(),
                b"DATA",
                message(BUYER, alias).as_bytes() + b"\r\n.",
            ],
        )
        assert "250-XFORWARD" in replies[1], replies[1]
        assert replies[2].startswith("250") and replies[3].startswith("250"), replies
        assert replies[5].startswith("503"), "XFORWARD inside a transaction must be refused"
        assert replies[8].startswith("250 2.0.0"), replies
        async with relay.engine.connect() as conn:
            ips = (await conn.execute(sa.select(archive.c.client_ip))).scalars().all()
    assert seen == [("2001:db8::7", "mx.buyer.example")]
    assert ips == ["2001:db8::7"]


async def test_xforward_refused_from_untrusted_peers(make_settings) -> None:
    settings = make_settings(smtp={"xforward": True, "proxy_networks": ["10.0.0.0/8"]})
    async with running_relay(settings, worker=False) as relay:
        replies = await session(relay.port, b"", [b"EHLO client.test", b"XFORWARD ADDR=192.0.2.1"])
    assert "XFORWARD" not in replies[1] and replies[2].startswith("502"), replies


async def _held(port: int, header: bytes, lines: list[bytes]) -> tuple[Any, list[str]]:
    """A session left open after ``lines``: (writer, replies)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(header)
    replies = [(await asyncio.wait_for(reader.readline(), 10)).decode()]
    for line in lines:
        writer.write(line + b"\r\n")
        out = b""
        while True:
            got = await asyncio.wait_for(reader.readline(), 10)
            out += got
            if not got or len(got) < 4 or got[3:4] != b"-":
                break
        replies.append(out.decode())
    return writer, replies


async def test_per_client_cap_counts_the_client_behind_proxy(make_settings) -> None:
    """Every connection comes from the balancer; the cap counts the header's client."""
    settings = make_settings(
        smtp={
            "proxy_protocol": True,
            "proxy_networks": ["127.0.0.1/32"],
            "max_connections_per_client": 2,
        }
    )
    async with running_relay(settings, worker=False) as relay:
        held = [await _held(relay.port, proxy_v2("203.0.113.7", 1000 + n), []) for n in range(2)]
        assert all(r[0].startswith("220") for _, r in held)
        third, replies = await _held(relay.port, proxy_v2("203.0.113.7", 1002), [])
        assert replies[0].startswith("421 4.7.0"), replies
        other, replies = await _held(relay.port, proxy_v2("198.51.100.1", 1003), [])
        assert replies[0].startswith("220"), replies
        # health checks (LOCAL) keep the balancer's address and are not counted
        checks = [await _held(relay.port, PROXY_LOCAL, []) for _ in range(3)]
        assert all(r[0].startswith("220") for _, r in checks)
        for writer in [third, other, *(w for w, _ in held + checks)]:
            writer.close()


async def test_per_client_cap_counts_the_client_behind_xforward(make_settings) -> None:
    """Postfix's own connections are not counted; its XFORWARD clients are."""
    settings = make_settings(
        smtp={"xforward": True, "proxy_networks": ["127.0.0.1/32"], "max_connections_per_client": 2}
    )
    async with running_relay(settings, worker=False) as relay:
        postfix = [await _held(relay.port, b"", [b"EHLO postfix.test"]) for _ in range(4)]
        assert all(r[1].startswith("250") for _, r in postfix)  # 4 from 127.0.0.1: fine
        forwarded = [b"XFORWARD ADDR=192.0.2.44"]
        results = [
            await _held(relay.port, b"", [b"EHLO postfix.test", *forwarded]) for _ in range(3)
        ]
        assert [r[2][:9] for _, r in results] == ["250 2.0.0", "250 2.0.0", "421 4.7.0"]
        for writer, _ in postfix + results:
            writer.close()
