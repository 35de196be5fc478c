"""Addresses compare as the big providers compare them: the domain case-insensitively and
IDNA-normalised, the local part case-insensitively (RFC 6531 UTF-8 local parts too), while
what the party registered is what we show, deliver to and archive.

Why case-insensitive local parts do not weaken authentication: the local part only says
*which* party claims to write; the proof is a DKIM signature of the domain, which the
domain's own servers give any of their mailboxes anyway.
"""

from __future__ import annotations

import pytest

from relay.authn.fromaddr import FromError, canonical_address, parse_mailbox, same_address
from relay.store import orders
from relay.store.archive import SearchFilter, search
from tests.authn.mailworld import World, message, sign
from tests.authn.relayworld import auth_relay, publish_key
from tests.helpers import BUYER, create_order, send

MIXED = "John.Smith@Mixed.example"
IDN = "xn--mller-kva.example"  # müller.example


async def test_mixed_case_registered_seller_is_delivered(make_settings, world: World, sink) -> None:
    publish_key(world, "mixed.example")
    async with auth_relay(make_settings, world, sink) as relay:
        order = await create_order(relay, seller=MIXED, seller_name="Shop GmbH")
        for sender in (MIXED, "john.smith@MIXED.EXAMPLE", "JOHN.SMITH@mixed.example"):
            raw = sign(message(from_=f"John Smith <{sender}>", to=order.buyer_alias),
                       "mixed.example")  # fmt: skip
            code, text = await send(relay.port, sender, [order.buyer_alias], raw)
            assert code == 250, (sender, text)
        # A different mailbox of the same domain is still not the party.
        raw = sign(message(from_="jane@mixed.example", to=order.buyer_alias), "mixed.example")
        code, text = await send(relay.port, "jane@mixed.example", [order.buyer_alias], raw)
        assert code == 550 and text.startswith("5.7.1"), text
        await sink.wait_for(3)
        # The buyer writes back: delivered to the address exactly as registered.
        await orders.set_party(relay.engine, BUYER, allow_spf_only=True)
        world.dns.add("buyer.example", "TXT", "v=spf1 ip4:127.0.0.1 -all")
        code, text = await send(
            relay.port, BUYER, [order.seller_alias], message(from_=BUYER, to=order.seller_alias)
        )
        assert code == 250, text
        got = await sink.wait_for(4)
        assert got[-1].rcpt_tos == [MIXED]
        assert f"<{MIXED}>".encode() in got[-1].data
        view = await orders.get_order(relay.engine, "relay.example", order.id)
        assert view.seller == MIXED
        rows = await search(relay.engine, SearchFilter(seller="john.smith@mixed.EXAMPLE"))
        assert len(rows) == 5
        assert {r["rcpt"] for r in rows if r["direction"] == "buyer-to-seller"} == {MIXED}


async def test_extra_sender_registered_with_capitals(make_settings, world: World, sink) -> None:
    publish_key(world, "mixed.example")
    async with auth_relay(make_settings, world, sink) as relay:
        order = await create_order(relay, seller=MIXED)
        await orders.add_sender(relay.engine, MIXED.lower(), "Orders@Mixed.Example")
        assert await orders.list_senders(relay.engine, MIXED) == ["Orders@Mixed.Example"]
        raw = sign(message(from_="orders@mixed.example", to=order.buyer_alias), "mixed.example")
        code, text = await send(relay.port, "orders@mixed.example", [order.buyer_alias], raw)
        assert code == 250, text


async def test_utf8_local_part_and_idn_domain(make_settings, world: World, sink) -> None:
    """RFC 6531/6532: a buyer registered as jürgen@müller.example writes with a raw UTF-8
    From (envelope ASCII until SMTPUTF8 is advertised); U-label, A-label and case forms
    of the From all match the registration."""
    publish_key(world, IDN)
    async with auth_relay(make_settings, world, sink) as relay:
        order = await create_order(relay, buyer="jürgen@müller.example", buyer_name="Jürgen")
        forms = ("jürgen@müller.example", f"jürgen@{IDN}", "Jürgen@MÜLLER.example")
        for i, form in enumerate(forms):
            raw = sign(
                message(from_=f"Jürgen Müller <{form}>", to=order.seller_alias)
                .decode().replace("m1@", f"m{i}@").encode("utf-8"),
                IDN,
            )
            code, text = await send(relay.port, f"bounce@{IDN}", [order.seller_alias], raw)
            assert code == 250, (form, text)
        got = await sink.wait_for(3)
        for m in got:
            assert "jürgen".encode() not in m.data and IDN.encode() not in m.data
        # Someone else at the same domain is still a stranger.
        raw = sign(message(from_=f"hans@{IDN}", to=order.seller_alias), IDN)
        code, text = await send(relay.port, f"bounce@{IDN}", [order.seller_alias], raw)
        assert code == 550 and text.startswith("5.7.1"), text


def test_canonical_address() -> None:
    assert canonical_address("John.Smith@Mixed.Example.") == "john.smith@mixed.example"
    assert canonical_address("Jürgen@Müller.example") == f"jürgen@{IDN}"
    assert canonical_address(f"JÜRGEN@{IDN.upper()}") == f"jürgen@{IDN}"
    # NFD and NFC spellings of the same name are one address.
    assert canonical_address("ju\u0308rgen@x.example") == canonical_address("jürgen@x.example")


def test_same_address() -> None:
    assert same_address("a@B.example", "a@b.EXAMPLE.")
    assert same_address("John.Smith@Mixed.example", "john.smith@mixed.example")
    assert same_address("jürgen@müller.example", f"JÜRGEN@{IDN}")
    assert not same_address("a@b.example", "a@b.example.evil")
    assert not same_address("a@b.example", "a@b\u0435.example")  # Cyrillic e
    assert not same_address("", "")


@pytest.mark.parametrize(
    ("value", "mailbox"),
    [
        ("Jürgen Müller <jürgen@müller.example>", f"jürgen@{IDN}"),
        ('"Müller, Jürgen" <Jürgen@Müller.example>', f"Jürgen@{IDN}"),
        ("用户@例子.example", "用户@xn--fsqu00a.example"),
        ("John.Smith@Mixed.example", "John.Smith@mixed.example"),
    ],
)
def test_parse_mailbox_accepts_utf8(value: str, mailbox: str) -> None:
    assert parse_mailbox(value) == mailbox


@pytest.mark.parametrize(
    "value",
    [
        "j\ufffdrgen@x.example",  # undecodable byte
        "j\u200drgen@x.example",  # zero-width joiner
        "jürgen\u202e@x.example",  # bidi override
        "jür\u00a0gen@x.example",  # no-break space
        "jürgen@x\u200b.example",  # zero-width space in the domain
        "jürgen@xn--zz.example",  # broken A-label
        "jürgen@müller_x.example",  # not a host name
        "jürgen@-müller.example",
    ],
)
def test_parse_mailbox_refuses_ambiguous_utf8(value: str) -> None:
    with pytest.raises(FromError) as err:
        parse_mailbox(value)
    assert "@" not in str(err.value)


async def test_u_label_signing_domain_aligns(world: World) -> None:
    """RFC 8616 §4: an EAI signer may write d= as a U-label; it is the same domain."""
    publish_key(world, IDN)
    raw = sign(message(from_=f"jürgen@{IDN}").decode().encode("utf-8"), "müller.example",
               keyname=IDN)  # fmt: skip
    assert "d=müller.example".encode() in raw
    results, decision = await world.check(
        raw, registered=frozenset({"Jürgen@müller.example"}), mail_from=f"b@{IDN}"
    )
    assert decision.ok, decision
    assert results.passed_by == f"dkim:{IDN}"
