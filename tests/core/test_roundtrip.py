"""The whole mail path over loopback: buyer -> seller alias -> seller, reply back, threads."""

from __future__ import annotations

import re

from relay.store import orders
from tests.helpers import BUYER, DOMAIN, ORDER, SELLER, create_order, message, running_relay, send


async def _order(relay, **kw):  # type: ignore[no-untyped-def]
    return await create_order(
        relay, buyer_locale="de-DE", buyer_name="Alice", seller_name="Shop GmbH", **kw
    )


async def test_buyer_and_seller_correspond_without_seeing_addresses(make_settings, sink) -> None:
    settings = make_settings(delivery={"smarthost": f"127.0.0.1:{sink.port}"})
    async with running_relay(settings, policy=None) as relay:
        order = await _order(relay)
        first = message(BUYER, order.seller_alias, body="Hallo, wann kommt mein Paket?\n")
        code, text = await send(relay.port, BUYER, [order.seller_alias], first.as_bytes())
        assert code == 250, text
        got = (await sink.wait_for(1))[0]
        assert got.rcpt_tos == [SELLER]
        delivered = got.data
        assert b"alice@buyer.example" not in delivered.lower()
        assert b"buyer.example" not in delivered.lower()
        assert f'From: "Alice via Marketplace" <{order.buyer_alias}>'.encode() in delivered
        assert f'To: "Shop GmbH" <{SELLER}>'.encode() in delivered
        relay_id = re.search(rb"Message-ID: <([^>]+)>", delivered).group(1).decode()
        assert relay_id.endswith("@" + DOMAIN)
        assert got.mail_from.endswith("@" + DOMAIN) and got.mail_from.startswith("bounce+")

        # The seller presses Reply: To the buyer alias, In-Reply-To our minted id.
        reply = message(
            SELLER,
            order.buyer_alias,
            subject="Re: Question about my order",
            body="Morgen.\n",
            In_Reply_To=f"<{relay_id}>",
            References=f"<{relay_id}>",
        )
        code, text = await send(relay.port, SELLER, [order.buyer_alias], reply.as_bytes())
        assert code == 250, text
        back = (await sink.wait_for(2))[1]
        assert back.rcpt_tos == [BUYER]
        assert f'From: "Shop GmbH via Marketplace" <{order.seller_alias}>'.encode() in back.data
        assert b"shop.example" not in back.data.lower()
        # The buyer's client knows the first message by its own Message-ID.
        assert f"In-Reply-To: {first['Message-ID']}".encode() in back.data
        assert f"References: {first['Message-ID']}".encode() in back.data


async def test_strangers_and_unknown_aliases_are_refused(make_settings, sink) -> None:
    settings = make_settings(delivery={"smarthost": f"127.0.0.1:{sink.port}"})
    async with running_relay(settings, policy=None) as relay:
        order = await _order(relay)
        data = message("mallory@evil.example", order.seller_alias).as_bytes()
        code, text = await send(relay.port, "mallory@evil.example", [order.seller_alias], data)
        assert (code, text.split()[0]) == (550, "5.7.1")
        code, text = await send(relay.port, BUYER, [f"s-doesnotexist@{DOMAIN}"], data)
        assert (code, text.split()[0]) == (550, "5.1.1")
        code, text = await send(relay.port, BUYER, ["someone@elsewhere.example"], data)
        assert (code, text.split()[0]) == (550, "5.7.1")
        assert "Relaying denied" in text
        await orders.set_status(relay.engine, DOMAIN, ORDER, "closed")
        ok = message(BUYER, order.seller_alias).as_bytes()
        code, text = await send(relay.port, BUYER, [order.seller_alias], ok)
        assert (code, text.split()[0]) == (550, "5.1.1")
        assert sink.messages == []
        for reply in (text,):
            assert "buyer.example" not in reply and "shop.example" not in reply
