"""Sender authentication and DKIM signing in the running relay, against a loopback DNS."""

from __future__ import annotations

import json
from pathlib import Path

import dkim
import dns.resolver

from relay.dkim import generate_key
from relay.store import orders
from relay.store.archive import SearchFilter, get_record, search
from relay.wiring import auth_parts
from tests.helpers import (
    BUYER,
    ORDER,
    SELLER,
    create_order,
    dkim_sign,
    message,
    running_relay,
    send,
)

SHOP_KEY, SHOP_TXT = generate_key("rsa-sha256")
RELAY_KEY, RELAY_TXT = generate_key("rsa-sha256")


def _world(dns_server) -> None:  # type: ignore[no-untyped-def]
    dns_server.add("buyer.example", "TXT", "v=spf1 ip4:127.0.0.1 -all")
    dns_server.add("shop.example", "TXT", "v=spf1 ip4:192.0.2.10 -all")  # not us: DKIM needed
    dns_server.add("sel._domainkey.shop.example", "TXT", SHOP_TXT)
    dns_server.add("_dmarc.shop.example", "TXT", "v=DMARC1; p=none")
    dns_server.add("s1._domainkey.relay.example", "TXT", RELAY_TXT)


def _settings(make_settings, dns_server, sink, tmp_path: Path):  # type: ignore[no-untyped-def]
    key_file = tmp_path / "s1.pem"
    key_file.write_bytes(RELAY_KEY)
    return make_settings(
        delivery={"smarthost": f"127.0.0.1:{sink.port}"},
        auth={"mode": "enforce"},
        dns={"nameservers": ["127.0.0.1"], "port": dns_server.port, "timeout": "2s"},
        dkim={"selector": "s1", "key_file": str(key_file)},
    )


def _verify_with_dns(data: bytes, dns_server) -> bool:  # type: ignore[no-untyped-def]
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers, resolver.port = ["127.0.0.1"], dns_server.port

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes:
        answer = resolver.resolve(name.decode().rstrip("."), "TXT")
        return b"".join(b"".join(r.strings) for r in answer)

    return dkim.verify(data, dnsfunc=dnsfunc)


async def test_authenticated_mail_passes_and_leaves_signed(
    make_settings, dns_server, sink, tmp_path
) -> None:
    _world(dns_server)
    settings = _settings(make_settings, dns_server, sink, tmp_path)
    async with running_relay(settings, policy=None, **auth_parts(settings)) as relay:
        order = await create_order(relay, buyer_name="Alice", seller_name="Shop")
        await orders.set_party(relay.engine, BUYER, allow_spf_only=True)

        # The buyer's domain has no DKIM: SPF alone, allowed for this party.
        code, text = await send(
            relay.port, BUYER, [order.seller_alias], message(BUYER, order.seller_alias).as_bytes()
        )
        assert code == 250, text
        # The seller's server signs with DKIM; SPF would fail from this address.
        signed = dkim_sign(
            message(SELLER, order.buyer_alias).as_bytes(), "shop.example", "sel", SHOP_KEY
        )
        code, text = await send(relay.port, SELLER, [order.buyer_alias], signed)
        assert code == 250, text

        got = await sink.wait_for(2)
        for m in got:
            assert _verify_with_dns(m.data, dns_server), (
                "delivered copy must verify against the relay key"
            )
            assert b"d=relay.example" in m.data
            head = m.data.split(b"\r\n\r\n", 1)[0].lower()
            assert b"authentication-results" not in head and b"d=shop.example" not in head
        rows = await search(relay.engine, SearchFilter(order_id=ORDER))
        records = [await get_record(relay.engine, r["id"]) for r in rows]
        passed_by = sorted(json.loads(r["auth"])["passed_by"] for r in records)
        assert passed_by == ["dkim:shop.example", "spf:buyer.example"]


async def test_forged_and_unauthenticated_mail_is_refused(
    make_settings, dns_server, sink, tmp_path
) -> None:
    _world(dns_server)
    settings = _settings(make_settings, dns_server, sink, tmp_path)
    async with running_relay(settings, policy=None, **auth_parts(settings)) as relay:
        order = await create_order(relay)
        # Someone on our own IP puts the seller's address in From, with no signature.
        forged = message(SELLER, order.buyer_alias).as_bytes()
        code, text = await send(relay.port, SELLER, [order.buyer_alias], forged)
        assert code == 550 and text.startswith("5.7.2"), text
        assert "shop.example" not in text and "@" not in text
        # The buyer without the SPF-only relaxation needs DKIM, which buyer.example lacks.
        code, text = await send(
            relay.port, BUYER, [order.seller_alias], message(BUYER, order.seller_alias).as_bytes()
        )
        assert code == 550 and text.startswith("5.7.2"), text
        # DNS trouble is a temporary failure.
        await orders.set_party(relay.engine, BUYER, allow_spf_only=True)
        dns_server.fail("buyer.example")
        code, text = await send(
            relay.port, BUYER, [order.seller_alias], message(BUYER, order.seller_alias).as_bytes()
        )
        assert code == 451 and text.startswith("4.4.3"), text
        rows = await search(relay.engine, SearchFilter(order_id=ORDER))
        assert [r["verdict"] for r in rows] == ["tempfail", "refused", "refused"]
        assert sink.messages == []
