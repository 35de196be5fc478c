"""The content policy inside the running relay: redact and deliver, or refuse in-session."""

from __future__ import annotations

import asyncio
import json
from email import message_from_bytes, policy

import pytest

from relay.store.archive import SearchFilter, get_record, search
from tests.helpers import BUYER, ORDER, SELLER, create_order, message, running_relay, send

PHONE = "+44 20 7946 0321"


def text_of(data: bytes) -> str:
    """Decoded text of every text part: the quoted-printable soft break must not hide a leak."""
    msg = message_from_bytes(data, policy=policy.default)
    parts = [p.get_content() for p in msg.walk() if p.get_content_maintype() == "text"]
    return " ".join(" ".join(parts).split())


@pytest.mark.parametrize("workers", [0, 1], ids=["threads", "processes"])
async def test_redacted_delivery_and_promotional_refusal(make_settings, sink, workers: int) -> None:
    settings = make_settings(
        delivery={"smarthost": f"127.0.0.1:{sink.port}"}, policy={"workers": workers}
    )
    async with running_relay(settings) as relay:
        order = await create_order(relay, buyer_locale="en-GB", seller_name="Shop")
        body = f"Hello, your parcel left today. If anything is wrong, call me on {PHONE}.\n"
        code, text = await send(
            relay.port,
            SELLER,
            [order.buyer_alias],
            message(SELLER, order.buyer_alias, "Your order", body).as_bytes(),
        )
        assert code == 250, text
        delivered = text_of((await sink.wait_for(1))[0].data)
        assert "7946" not in delivered and "[phone number removed]" in delivered

        promo = (
            "Thank you for your order! Use code SAVE20 for 20% off your next purchase in our "
            "shop, and have a look at our new summer collection with great discounts.\n"
        )
        code, text = await send(
            relay.port,
            SELLER,
            [order.buyer_alias],
            message(SELLER, order.buyer_alias, "Special offer", promo).as_bytes(),
        )
        assert code == 550 and text.startswith("5.7.1"), text
        assert "promot" in text.lower() and "SAVE20" not in text

        rows = await search(relay.engine, SearchFilter(order_id=ORDER))
        assert [r["verdict"] for r in rows] == ["reject", "redact"]
        redacted = await get_record(relay.engine, rows[1]["id"])
        assert PHONE in text_of(redacted["original"]) and "7946" not in text_of(
            redacted["delivered"]
        )
        assert any(f["kind"] == "phone_number" for f in json.loads(redacted["findings"]))
        rejected = await get_record(relay.engine, rows[0]["id"])
        assert rejected["delivered"] is None
        assert any(f["kind"] == "promotional" for f in json.loads(rejected["findings"]))
        assert len(sink.messages) == 1


async def test_automatic_replies_are_delivered_but_never_answered(make_settings, sink) -> None:
    """An out-of-office through an alias reaches the other party; if its delivery fails,
    nobody gets a notice (RFC 3834: no replies to automatic replies)."""
    sink.rcpt_reply = lambda rcpt: (
        "550 5.1.1 <support@shop.example>: no such user" if rcpt == SELLER else None
    )
    settings = make_settings(delivery={"smarthost": f"127.0.0.1:{sink.port}"})
    async with running_relay(settings, policy=None) as relay:
        order = await create_order(relay)
        ooo = message(
            BUYER,
            order.seller_alias,
            "Out of office",
            "I am away until Monday.\n",
            Auto_Submitted="auto-replied",
        )
        code, _ = await send(relay.port, BUYER, [order.seller_alias], ooo.as_bytes())
        assert code == 250
        normal = message(BUYER, order.seller_alias, "Question", "Where is it?\n")
        code, _ = await send(relay.port, BUYER, [order.seller_alias], normal.as_bytes())
        assert code == 250
        notices = await sink.wait_for(1)
        await asyncio.sleep(0.5)  # time for a wrong second notice to show up
        assert (
            len(notices) == 1
            and notices[0].mail_from in ("", "<>")
            and notices[0].rcpt_tos == [BUYER]
        )
        assert b"support@shop.example" not in notices[0].data
        assert b"Question" in notices[0].data and b"Out of office" not in notices[0].data
        rows = await search(relay.engine, SearchFilter(order_id=ORDER))
        statuses = sorted(
            d["status"] for r in rows if r["kind"] == "message" for d in r["deliveries"]
        )
        assert statuses == ["failed", "failed"]


async def test_a_second_review_request_is_refused_from_the_archive_count(
    make_settings, sink
) -> None:
    """One neutral request 5 to 30 days after delivery is allowed; the archive remembers
    it, so a second one for the same order is a repeat request."""
    from datetime import timedelta

    from relay.store.tables import utcnow

    settings = make_settings(delivery={"smarthost": f"127.0.0.1:{sink.port}"})
    async with running_relay(settings) as relay:
        order = await create_order(
            relay, buyer_locale="en-US", delivered_at=utcnow() - timedelta(days=10)
        )
        ask = (
            "Hello, we hope the kettle arrived safely. If you have a moment, we would be "
            "grateful if you could leave a review of your purchase on the marketplace.\n"
        )
        first = message(SELLER, order.buyer_alias, "Your recent order", ask).as_bytes()
        code, text = await send(relay.port, SELLER, [order.buyer_alias], first)
        assert code == 250, text
        again = message(SELLER, order.buyer_alias, "Your recent order", ask).as_bytes()
        code, text = await send(relay.port, SELLER, [order.buyer_alias], again)
        assert code == 550 and "review" in text.lower(), text
        rows = await search(relay.engine, SearchFilter(order_id=ORDER))
        assert [r["verdict"] for r in rows] == ["reject", "deliver"]
