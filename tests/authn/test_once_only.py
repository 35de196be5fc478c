"""Once-only header fields (RFC 5322 §3.6) over real SMTP, and DKIM decisions that rest
only on what a signature covers.

DKIM signs the bottom-most instance of a field; everything else reads the top-most one.
A second copy of a once-only field is therefore always a way to show the reader one
thing while the signature vouches for another, and is refused at intake.
"""

from __future__ import annotations

import pytest

from relay.authn.dkimverify import verify_all
from relay.authn.dnsutil import Deadline
from relay.core.replies import Reply
from relay.mail.parse import ONCE_ONLY, intake
from relay.store.archive import SearchFilter, search, verify
from tests.authn.mailworld import ALIAS, ATTACKER_IP, SELLER, World, message, sign
from tests.authn.relayworld import auth_relay
from tests.helpers import create_order, send

OTHER_ORDER = "113-0000000-0000002"


async def _two_orders(relay):  # type: ignore[no-untyped-def]
    """Two orders of the same seller: the attacker holds a signed reply from order A."""
    a = await create_order(relay, seller=SELLER, buyer_name="Alice", seller_name="Shop GmbH")
    b = await create_order(
        relay, order_id=OTHER_ORDER, seller=SELLER, buyer="bob@buyer.example", buyer_name="Bob"
    )
    return a, b


async def test_signed_reply_replayed_with_prepended_to_is_refused(
    make_settings, world: World, sink
) -> None:
    async with auth_relay(make_settings, world, sink) as relay:
        a, b = await _two_orders(relay)
        genuine = sign(message(to=a.buyer_alias), "shop.example")
        # Control: the genuine message to its own alias passes authentication.
        code, text = await send(relay.port, SELLER, [a.buyer_alias], genuine)
        assert code == 250, text
        forged = f"To: <{b.buyer_alias}>\r\n".encode() + genuine
        code, text = await send(relay.port, "x@evil.example", [b.buyer_alias], forged)
        assert code == 554 and text.startswith("5.6.0") and "To" in text, text
        # Obsolete syntax and another case count as the same field.
        for head in (f"to : <{b.buyer_alias}>", f"TO: {b.buyer_alias}"):
            code, text = await send(
                relay.port, "x@evil.example", [b.buyer_alias], f"{head}\r\n".encode() + genuine
            )
            assert code == 554 and text.startswith("5.6.0"), (head, text)
        await sink.wait_for(1)
        assert len(sink.messages) == 1 and a.buyer_alias not in sink.messages[0].data.decode()
        rows = await search(relay.engine, SearchFilter(order_id=OTHER_ORDER))
        assert [r["verdict"] for r in rows] == ["refused"] * 3
        assert (await verify(relay.engine)).ok


async def test_second_subject_on_signed_message_is_refused(
    make_settings, world: World, sink
) -> None:
    async with auth_relay(make_settings, world, sink) as relay:
        a, _ = await _two_orders(relay)
        genuine = sign(message(to=a.buyer_alias), "shop.example")
        forged = b"Subject: Payment failed: pay at https://pay.evil.example\r\n" + genuine
        code, text = await send(relay.port, "x@evil.example", [a.buyer_alias], forged)
        assert code == 554 and text.startswith("5.6.0") and "Subject" in text, text
        # Appended below the signed one, too (the signature then covers the attacker's).
        head, _, body = genuine.partition(b"\r\n\r\n")
        forged = head + b"\r\nSubject: Pay here\r\n\r\n" + body
        code, text = await send(relay.port, "x@evil.example", [a.buyer_alias], forged)
        assert code == 554 and "Subject" in text, text
        assert sink.messages == []


async def test_every_once_only_field_is_counted(make_settings, sink) -> None:
    """Each of the eleven fields, twice, in varying case and obsolete syntax: refused with
    the field's name, and archived as refused; the same message with one copy passes."""
    from tests.helpers import BUYER, running_relay
    from tests.helpers import message as plain_message

    settings = make_settings(delivery={"smarthost": f"127.0.0.1:{sink.port}"})
    async with running_relay(settings, policy=None) as relay:
        order = await create_order(relay)
        base = plain_message(BUYER, order.seller_alias).as_bytes()
        values = {
            "from": BUYER, "sender": BUYER, "reply-to": BUYER, "to": order.seller_alias,
            "cc": "x@other.example", "bcc": "y@other.example", "message-id": "<z@buyer.example>",
            "in-reply-to": "<p@buyer.example>", "references": "<p@buyer.example>",
            "subject": "Another subject", "date": "Fri, 27 Nov 2026 09:00:00 +0000",
        }  # fmt: skip
        assert set(values) == set(ONCE_ONLY)
        for i, (name, value) in enumerate(sorted(values.items())):
            shown = [name.upper(), name.title(), name][i % 3] + (" " if i % 2 else "")
            data = f"{shown}: {value}\r\n".encode() + base
            if name in ("sender", "reply-to", "cc", "bcc", "in-reply-to", "references"):
                data = f"{name}: {value}\r\n".encode() + data  # not in the base message
            code, text = await send(relay.port, BUYER, [order.seller_alias], data)
            assert code == 554 and text.startswith("5.6.0"), (name, text)
            assert name.lower() in text.lower(), (name, text)
        code, text = await send(relay.port, BUYER, [order.seller_alias], base)
        assert code == 250, text
        rows = await search(relay.engine, SearchFilter(order_id=order.id))
        assert [r["verdict"] for r in rows] == ["deliver"] + ["refused"] * len(values)


@pytest.mark.parametrize(
    "extra",
    [b"Resent-To: a@b.example\r\nResent-To: c@d.example\r\n", b"Received: x\r\nReceived: y\r\n",
     b"Comments: a\r\nComments: b\r\nKeywords: a\r\nKeywords: b\r\n"],
)  # fmt: skip
def test_repeatable_fields_stay_allowed(extra: bytes) -> None:
    raw = message(extra=extra.decode())
    assert not isinstance(intake(raw, max_hops=30), Reply)


async def test_replay_check_itself_refuses_duplicate_addressees(world: World) -> None:
    """Defence in depth below intake: authenticate() called with a doubled To never lets
    the DKIM pass count, whichever copy names the alias, even from the seller's own IP."""
    genuine = sign(message(to="friend@other.example"), "shop.example")
    for forged in (f"To: {ALIAS}\r\n".encode() + genuine, genuine + b""):
        results, decision = await world.check(forged)
        assert not decision.ok and decision.enhanced == "5.7.21", forged[:40]
        assert results.dkim[0].reason == "signed for other recipients"


async def test_alias_only_in_unsigned_field_needs_spf(world: World) -> None:
    """Only what h= covers counts: the alias named in an unsigned Cc is a pass only with
    an aligned SPF pass (the seller's own server), never from a stranger's address."""
    forged = f"Cc: {ALIAS}\r\n".encode() + sign(message(to="friend@other.example"), "shop.example")
    results, decision = await world.check(forged, ip=ATTACKER_IP, mail_from="x@evil.example")
    assert not decision.ok and results.dkim[0].reason == "To not signed and no aligned SPF pass"
    _, decision = await world.check(forged)
    assert decision.ok


async def test_signs_to_means_h_covers_to(world: World) -> None:
    res = world.dns.resolver(timeout=0.5)
    signed = await verify_all(sign(message(), "shop.example"), res, Deadline.after(3))
    unsigned = await verify_all(
        sign(message(), "shop.example", to_signed=False), res, Deadline.after(3)
    )
    assert signed[0].signs_to and not unsigned[0].signs_to
    with_cc = sign(message(extra="Cc: x@other.example\r\n"), "shop.example")
    result = (await verify_all(with_cc, res, Deadline.after(3)))[0]
    assert result.signs_to and not result.signs_cc  # the test signer does not sign Cc
