"""The leak battery: a buyer-seller conversation in the shapes Outlook, Gmail, Apple Mail
and Thunderbird write, through a running relay (real SMTP, the shipped content policy),
both directions, with attached originals, vCards, inline images and a bounce; then every
delivered byte, every notice, is scanned for the other party's real address and domain
in every encoding a reader could undo (tests/mail/leakscan.py)."""

from __future__ import annotations

import email
import email.policy
import re
from typing import Any

from tests.delivery_support import all_status, dsn, wait_until
from tests.helpers import BUYER, DOMAIN, SELLER, create_order, running_relay, send
from tests.mail import client_shapes as shapes
from tests.mail.leakscan import case_count, leaks

SECRET = "cd" * 32
BUYER_P = shapes.Person("Alice Buyer", BUYER)
SELLER_P = shapes.Person("Shop GmbH", SELLER)
THIRD = ["friend@third.example", "third.example"]


def secrets_of(person: shapes.Person) -> list[str]:
    return [person.address, person.domain, *THIRD]


def conversation(
    order: Any, *, qp_original: bool = False
) -> list[tuple[shapes.Person, str, bytes]]:
    """(writer, alias written to, message): every client, both ways, attached originals."""
    out: list[tuple[shapes.Person, str, bytes]] = []
    for writer, other, alias in (
        (BUYER_P, SELLER_P, order.seller_alias),
        (SELLER_P, BUYER_P, order.buyer_alias),
    ):
        seed = writer.domain
        out += [
            (writer, alias, shapes.thunderbird(writer, alias, seed=seed + "tb")),
            (writer, alias, shapes.gmail(writer, alias, seed=seed + "gm")),
            (writer, alias, shapes.apple_mail(writer, alias, seed=seed + "am")),
            (
                writer,
                alias,
                shapes.outlook(writer, alias, other, alias, seed=seed + "ol", inner_qp=qp_original),
            ),
        ]
    return out


def image_refs_resolve(data: bytes) -> bool | None:
    """None without inline images; else whether every cid: URL names a part's Content-ID."""
    msg = email.message_from_bytes(data, policy=email.policy.compat32)
    ids, refs = set(), set()
    for part in msg.walk():
        if part["Content-ID"]:
            ids.add(part["Content-ID"].strip().strip("<>"))
        if part.get_content_maintype() == "text" and not part.is_multipart():
            text = part.get_payload(decode=True) or b""
            refs |= {r.decode() for r in re.findall(rb"cid:([^\s\"'<>\]]+)", text)}
    if not refs:
        return None
    return refs <= ids and all(r.endswith("@" + DOMAIN) for r in refs)


async def test_no_party_address_in_any_delivered_byte_notice_or_dsn(make_settings, sink) -> None:
    await battery(make_settings, sink, qp_original=False)


async def test_qp_encoded_attached_original_through_the_policy(make_settings, sink) -> None:
    await battery(make_settings, sink, qp_original=True)


async def battery(make_settings: Any, sink: Any, *, qp_original: bool) -> None:
    settings = make_settings(delivery={"smarthost": f"127.0.0.1:{sink.port}"})
    settings = settings.model_copy(
        update={"bounce": settings.bounce.model_copy(update={"secret": SECRET})}
    )
    # The seller's mailbox refuses one message, quoting its own address (as Postfix does);
    # the marker is in the body, which a notice never quotes.
    sink.data_reply = lambda data: (
        f"550 5.1.1 <{SELLER}>: mailbox full" if b"BOUNCE-ME" in data else None
    )
    async with running_relay(settings) as relay:
        order = await create_order(relay, buyer_name="Alice Buyer", seller_name="Shop GmbH")
        sent = conversation(order, qp_original=qp_original)
        for writer, alias, data in sent:
            code, text = await send(relay.port, writer.address, [alias], data)
            assert code == 250, (writer.address, text)
        delivered = await sink.wait_for(len(sent))
        await wait_until(lambda: all_status(relay.engine, "delivered", len(sent)))

        # A bounce of our making (the sink refuses at DATA) and one reported by a DSN.
        bounce_me = shapes.thunderbird(BUYER_P, order.seller_alias, seed="bounce").replace(
            b"Here is a photo of the jacket.", b"BOUNCE-ME: here is a photo."
        )
        code, text = await send(relay.port, BUYER, [order.seller_alias], bounce_me)
        assert code == 250, text
        await sink.wait_for(len(sent) + 1)
        rp = delivered[0].mail_from
        code, text = await send(relay.port, "", [rp], dsn(rp, rcpt=SELLER))
        assert code == 250, text
        got = await sink.wait_for(len(sent) + 2)

    checked = resolved = 0
    failures: list[str] = []
    for item in got:
        if item.rcpt_tos == [SELLER]:
            needles = secrets_of(BUYER_P)
        else:
            assert item.rcpt_tos == [BUYER]
            needles = secrets_of(SELLER_P)
        found = leaks(item.data, needles)
        if found:
            subject = re.search(rb"Subject: ([^\r\n]*)", item.data)
            about = subject.group(1).decode() if subject else ""
            failures.append(f"to {item.rcpt_tos[0]} {about!r}: {found}")
        checked += case_count(needles)
        ok = image_refs_resolve(item.data)
        if ok is not None:
            assert ok, item.data[:2000]
            resolved += 1
    notices = [g for g in got if g.mail_from in ("", "<>")]
    assert len(notices) == 2  # one per bounce, both to the buyer
    assert resolved >= 6  # every shape with an inline image, both ways
    assert failures == [], "\n".join(failures)
    print(f"leak battery: {len(got)} messages, {checked} needle/form checks, {resolved} with cid:")
