"""Red team, from outside: spoofs and legitimate senders over real SMTP against a running
relay with sender authentication enforced (loopback DNS, dkimpy signatures).

Every spoof must be refused (5xx, or 4xx for DNS trouble) and nothing may reach the
recipient's MX; every legitimate message must get 250 and arrive. No refusal text may
echo a party's address. The client is 127.0.0.1, which no seller SPF record lists, so
every sender here stands where an attacker stands unless a case publishes SPF for it.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiosmtplib
import dkim

from relay.store import orders
from tests.authn.mailworld import World, key, sign
from tests.authn.relayworld import auth_relay, publish_key
from tests.helpers import DOMAIN, create_order, send
from tests.mail import client_shapes as shapes

SELLER = "seller@shop.example"
BUYER = "alice@buyer.example"
SHARED = "mail.provider.example"  # a shared mailbox provider: any account holder gets d=
EVIL = "x@evil.example"


@dataclass(frozen=True)
class Order:
    id: str
    buyer_alias: str
    seller_alias: str


def msg(
    from_: str,
    to: str,
    *,
    extra: str = "",
    body: str = "Hello, your parcel left today.\r\n",
    subject: str = "Order 123-4567890-1234567",
    ctype: str = "text/plain; charset=utf-8",
) -> bytes:
    return (
        f"From: {from_}\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Date: Fri, 27 Nov 2026 09:00:00 +0000\r\nMessage-ID: <m{abs(hash(to))}@shop.example>\r\n"
        f"MIME-Version: 1.0\r\nContent-Type: {ctype}\r\n{extra}\r\n{body}"
    ).encode()


def dsign(raw: bytes, domain: str, headers: list[bytes], *, length: bool = False) -> bytes:
    """A signature with an explicit ``h=`` (oversigning, To twice, no To ...)."""
    pem, _ = key(domain)
    sig = dkim.sign(raw, b"sel", domain.encode(), pem, include_headers=headers, length=length,
                    canonicalize=(b"relaxed", b"relaxed"))  # fmt: skip
    return sig + raw


# A spoof: (envelope sender, recipients, bytes), built from the order's aliases.
Spoof = Callable[[Order], tuple[str, list[str], bytes]]


def _autoreply_replay(o: Order) -> tuple[str, list[str], bytes]:
    # The attacker writes to the seller's support from ``<buyer alias> <x@evil.example>``
    # (an unquoted display name with an @); the seller's auto-responder answers To: that
    # value, signed by shop.example, to x@evil.example. Replayed into the alias.
    to = f"{o.buyer_alias} <{EVIL}>"
    return EVIL, [o.buyer_alias], sign(msg(SELLER, to), "shop.example")


def _autoreply_replay_route(o: Order) -> tuple[str, list[str], bytes]:
    to = f'"x" <{o.buyer_alias}>@evil.example'
    return EVIL, [o.buyer_alias], sign(msg(SELLER, to), "shop.example")


def _autoreply_replay_second(o: Order) -> tuple[str, list[str], bytes]:
    to = f"Support <{EVIL}> {o.buyer_alias}"
    return EVIL, [o.buyer_alias], sign(msg(SELLER, to), "shop.example")


def _to_twice_in_h(o: Order) -> tuple[str, list[str], bytes]:
    # h= lists To twice (oversigned), written to somebody else; the attacker adds a To.
    raw = dsign(msg(SELLER, "friend@other.example"), "shop.example",
                [b"from", b"to", b"to", b"subject", b"date", b"message-id"])  # fmt: skip
    return EVIL, [o.buyer_alias], f"To: {o.buyer_alias}\r\n".encode() + raw


def _unsigned_to_swapped(o: Order) -> tuple[str, list[str], bytes]:
    raw = dsign(msg(SELLER, "friend@other.example"), "shop.example", [b"from", b"subject"])
    swapped = raw.replace(b"To: friend@other.example", f"To: {o.buyer_alias}".encode())
    return EVIL, [o.buyer_alias], swapped


def _unsigned_cc_added(o: Order) -> tuple[str, list[str], bytes]:
    raw = sign(msg(SELLER, "friend@other.example"), "shop.example")
    added = raw.replace(b"MIME-Version", f"Cc: {o.buyer_alias}\r\nMIME-Version".encode())
    return EVIL, [o.buyer_alias], added


def _second_to_above(o: Order) -> tuple[str, list[str], bytes]:
    raw = sign(msg(SELLER, "friend@other.example"), "shop.example")
    return EVIL, [o.buyer_alias], f"To: {o.buyer_alias}\r\n".encode() + raw


def _l_appended_part(o: Order) -> tuple[str, list[str], bytes]:
    raw = sign(msg(SELLER, o.buyer_alias), "shop.example", length=True)
    return EVIL, [o.buyer_alias], raw + b"\r\nPS: pay to IBAN XX00 0000 0000 instead.\r\n"


def _l_zero(o: Order) -> tuple[str, list[str], bytes]:
    raw = dsign(msg(SELLER, o.buyer_alias, body=""), "shop.example",
                [b"from", b"to", b"subject"], length=True)  # fmt: skip
    return EVIL, [o.buyer_alias], raw + b"Pay to IBAN XX00 0000 0000 instead.\r\n"


def _header_trick(extra_top: bytes = b"", replace: tuple[bytes, bytes] | None = None) -> Spoof:
    def build(o: Order) -> tuple[str, list[str], bytes]:
        raw = sign(msg(SELLER, o.buyer_alias), "shop.example")
        if replace:
            raw = raw.replace(*replace)
        return EVIL, [o.buyer_alias], extra_top + raw

    return build


def _unsigned(from_: str, env: str = EVIL, *, signer: str = "", extra: str = "") -> Spoof:
    def build(o: Order) -> tuple[str, list[str], bytes]:
        raw = msg(from_, o.buyer_alias, extra=extra)
        return env, [o.buyer_alias], sign(raw, signer) if signer else raw

    return build


def _to_other_alias_named(o: Order) -> tuple[str, list[str], bytes]:
    # RCPT the buyer alias, but the signed To names the seller's own alias.
    return SELLER, [o.buyer_alias], sign(msg(SELLER, o.seller_alias), "shop.example")


def _both_aliases(o: Order) -> tuple[str, list[str], bytes]:
    raw = sign(msg(SELLER, f"{o.buyer_alias}, {o.seller_alias}"), "shop.example")
    return SELLER, [o.buyer_alias, o.seller_alias], raw


def _own_alias_as_from(o: Order) -> tuple[str, list[str], bytes]:
    return SELLER, [o.buyer_alias], msg(o.seller_alias, o.buyer_alias)


def _buyer_alias_as_from(o: Order) -> tuple[str, list[str], bytes]:
    return EVIL, [o.buyer_alias], msg(o.buyer_alias, o.buyer_alias)


def _kelvin(o: Order) -> tuple[str, list[str], bytes]:
    # KELVIN SIGN K (U+212A): a distinct mailbox at a provider that does not normalise,
    # whose NFC form is ASCII 'K'. The provider signs every account's mail.
    sender = f"\u212aate@{SHARED}"
    return f"bounce@{SHARED}", [o.buyer_alias], sign(msg(sender, o.buyer_alias), SHARED)


def _nfkc(local: str) -> Spoof:
    def build(o: Order) -> tuple[str, list[str], bytes]:
        sender = f"{local}@{SHARED}"
        return f"bounce@{SHARED}", [o.buyer_alias], sign(msg(sender, o.buyer_alias), SHARED)

    return build


def _encoded_from(o: Order) -> tuple[str, list[str], bytes]:
    word = base64.b64encode(f"Shop <{SELLER}>".encode()).decode()
    raw = msg(f"=?utf-8?b?{word}?= <{EVIL}>", o.buyer_alias)
    return EVIL, [o.buyer_alias], sign(raw, "evil.example")


def _psl_parent(o: Order) -> tuple[str, list[str], bytes]:
    sender = "seller@shop.github.io"
    return EVIL, [o.buyer_alias], sign(msg(sender, o.buyer_alias), "github.io")


def _psl_sibling(o: Order) -> tuple[str, list[str], bytes]:
    sender = "seller@shop.github.io"
    return EVIL, [o.buyer_alias], sign(msg(sender, o.buyer_alias), "evil.github.io")


# name, builder, who the order's seller is (registered)
SPOOFS: list[tuple[str, Spoof, str]] = [
    ("autoreply-replay-unquoted-display-name", _autoreply_replay, SELLER),
    ("autoreply-replay-route-like-to", _autoreply_replay_route, SELLER),
    ("autoreply-replay-alias-after-mailbox", _autoreply_replay_second, SELLER),
    ("h-lists-to-twice-attacker-adds-to", _to_twice_in_h, SELLER),
    ("to-not-in-h-swapped", _unsigned_to_swapped, SELLER),
    ("unsigned-cc-names-alias", _unsigned_cc_added, SELLER),
    ("second-to-above-signed-headers", _second_to_above, SELLER),
    ("l-tag-appended-text", _l_appended_part, SELLER),
    ("l-zero-whole-body-added", _l_zero, SELLER),
    ("second-from-prepended", _header_trick(f"From: {EVIL}\r\n".encode()), SELLER),
    ("obsolete-from-space-colon", _header_trick(f"From : {EVIL}\r\n".encode()), SELLER),
    ("obsolete-from-tab-colon", _header_trick(f"From\t: {EVIL}\r\n".encode()), SELLER),
    ("lower-case-second-from", _header_trick(f"fROM: {EVIL}\r\n".encode()), SELLER),
    ("from-inside-continuation",
     _header_trick(replace=(b"Subject: Order", f"Subject: x\r\n From: {EVIL}\r\n\tOrder".encode())),
     SELLER),
    ("cr-only-line-ending-in-header",
     _header_trick(replace=(b"Subject: Order", f"Subject: x\rFrom: {EVIL}\rX: Order".encode())),
     SELLER),
    ("lf-only-line-ending-in-header",
     _header_trick(replace=(b"Subject: Order", f"Subject: x\nFrom: {EVIL}\nX: Order".encode())),
     SELLER),
    ("nul-in-header", _header_trick(f"X-A: a\x00b\r\nFrom: {EVIL}\r\n".encode()), SELLER),
    ("8bit-field-name", _header_trick(f"Fr\xf6m: {EVIL}\r\n".encode("latin-1")), SELLER),
    ("field-name-with-space", _header_trick(f"Reply To: {EVIL}\r\n".encode()), SELLER),
    ("display-name-holds-seller-address",
     _unsigned(f'"{SELLER}" <{EVIL}>', signer="evil.example"), SELLER),
    ("display-name-unquoted-seller-address",
     _unsigned(f"{SELLER} <{EVIL}>", signer="evil.example"), SELLER),
    ("encoded-word-display-with-address", _encoded_from, SELLER),
    ("encoded-word-whole-from",
     _unsigned("=?utf-8?q?seller=40shop.example?=", signer="evil.example"), SELLER),
    ("sender-header-is-seller",
     _unsigned(EVIL, signer="evil.example", extra=f"Sender: {SELLER}\r\n"), SELLER),
    ("resent-from-is-seller",
     _unsigned(EVIL, signer="evil.example", extra=f"Resent-From: {SELLER}\r\n"), SELLER),
    ("envelope-seller-header-attacker", _unsigned(EVIL, SELLER, signer="evil.example"), SELLER),
    ("envelope-seller-header-seller-unsigned", _unsigned(SELLER, SELLER), SELLER),
    ("cyrillic-a-in-registered-domain", _unsigned("seller@sh\u043ep.example", signer=""), SELLER),
    ("fullwidth-at", _unsigned("seller\uff20shop.example", signer=""), SELLER),
    ("fullwidth-at-then-real-at",
     _unsigned("seller\uff20shop.example@evil.example", signer="evil.example"), SELLER),
    ("fullwidth-local-part", _unsigned("\uff53eller@shop.example", signer=""), SELLER),
    ("punycode-lookalike", _unsigned("seller@xn--shp-5cd.example", signer=""), SELLER),
    ("kelvin-sign-local-part-at-shared-provider", _kelvin, f"kate@{SHARED}"),
    ("nfkc-ligature-local-part-at-shared-provider", _nfkc("\ufb01nance"), f"finance@{SHARED}"),
    ("nfkc-fullwidth-local-part-at-shared-provider", _nfkc("\uff4bate"), f"kate@{SHARED}"),
    ("long-s-local-part-at-shared-provider", _nfkc("\u017fupport"), f"support@{SHARED}"),
    ("dotless-i-local-part-at-shared-provider", _nfkc("k\u0131m"), f"kim@{SHARED}"),
    ("nfd-combining-local-part-at-shared-provider", _nfkc("jo\u0301se"), f"jose@{SHARED}"),
    ("psl-parent-signature", _psl_parent, "seller@shop.github.io"),
    ("psl-sibling-signature", _psl_sibling, "seller@shop.github.io"),
    ("own-alias-as-from", _own_alias_as_from, SELLER),
    ("recipient-alias-as-from", _buyer_alias_as_from, SELLER),
    ("relay-domain-from", _unsigned(f"postmaster@{DOMAIN}", f"postmaster@{DOMAIN}"), SELLER),
    ("signed-to-names-other-alias", _to_other_alias_named, SELLER),
    ("both-aliases-of-one-order", _both_aliases, SELLER),
]  # fmt: skip


def _publish(world: World) -> None:
    publish_key(world, SHARED)
    publish_key(world, "github.io")
    publish_key(world, "evil.github.io")


async def test_no_spoof_is_delivered(make_settings, world: World, sink) -> None:
    _publish(world)
    failures: list[str] = []
    replies: list[str] = []
    async with auth_relay(make_settings, world, sink) as relay:
        for n, (name, build, seller) in enumerate(SPOOFS):
            view = await create_order(
                relay, order_id=f"113-4829301-{5520000 + n}", buyer=BUYER, seller=seller
            )
            o = Order(view.id, view.buyer_alias, view.seller_alias)
            env, rcpts, raw = build(o)
            code, text = await send(relay.port, env, rcpts, raw)
            replies.append(text)
            if code == 250 or code < 400:
                failures.append(f"{name}: {code} {text}")
    assert not sink.messages or failures, "delivered without a 250?"
    assert failures == [], "\n".join(failures)
    assert sink.messages == []
    for text in replies:
        for party in (SELLER, BUYER, "shop.example", "buyer.example", SHARED):
            assert party not in text.lower(), text


# --- legitimate senders ---------------------------------------------------------------


def _smtputf8_send(port: int, sender: str, rcpts: list[str], data: bytes) -> Any:
    async def go() -> tuple[int, str]:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False, timeout=30)
        await client.connect()
        try:
            _, response = await client.sendmail(
                sender, rcpts, data, mail_options=["SMTPUTF8", "BODY=8BITMIME"]
            )
            return 250, response
        except aiosmtplib.SMTPResponseException as err:
            return err.code, err.message
        finally:
            await client.quit()

    return go()


P = shapes.Person


def _signed_shape(shape: Callable[..., bytes], person: P, to: str, domain: str) -> bytes:
    return sign(shape(person, to, seed=person.address + shape.__name__), domain)


def _folded_998(to: str) -> bytes:
    long_subject = "Frage zu Bestellung " + " ".join(["Lieferung"] * 150)
    body = ("Hallo, " + "x" * 990 + "\r\n") + "kurz.\r\n"
    raw = msg(SELLER, to, subject=long_subject, body=body)
    head, _, rest = raw.partition(b"\r\n\r\n")
    # fold the Subject as a client does (lines below 78, never above 998)
    subj = re.search(rb"Subject: [^\r\n]*", head).group(0)  # type: ignore[union-attr]
    words = subj.split(b" ")
    lines, cur = [], b""
    for w in words:
        if cur and len(cur) + len(w) > 76:
            lines.append(cur)
            cur = b" " + w
        else:
            cur = cur + (b" " if cur else b"") + w
    lines.append(cur)
    return head.replace(subj, b"\r\n".join(lines)) + b"\r\n\r\n" + rest


LEGIT_COUNT = 19


async def test_legitimate_senders_get_through(make_settings, world: World, sink) -> None:
    publish_key(world, "mixed.example")
    publish_key(world, "xn--mller-kva.example")
    publish_key(world, "tenant.example")
    # Microsoft 365 shape: DKIM signs From but not To; SPF of the tenant covers the client.
    world.dns.add("tenant.example", "TXT", "v=spf1 ip4:127.0.0.1 -all")
    world.dns.add("_dmarc.tenant.example", "TXT", "v=DMARC1; p=reject")
    cases: list[tuple[str, str, str, Callable[[str], bytes], bool]] = [
        # name, registered, envelope, build(to), smtputf8
        ("gmail-shape", SELLER, SELLER,
         lambda to: _signed_shape(shapes.gmail, P("Shop GmbH", SELLER), to, "shop.example"), False),
        ("thunderbird-shape", SELLER, SELLER,
         lambda to: _signed_shape(shapes.thunderbird, P("Shop GmbH", SELLER), to, "shop.example"),
         False),
        ("apple-shape", SELLER, SELLER,
         lambda to: _signed_shape(shapes.apple_mail, P("Shop GmbH", SELLER), to, "shop.example"),
         False),
        ("outlook-shape-attach-original", SELLER, SELLER,
         lambda to: sign(shapes.outlook(P("Shop GmbH", SELLER), to, P("Alice", BUYER), to,
                                        inner_qp=False), "shop.example"), False),
        ("m365-to-unsigned-spf-aligned", "sales@tenant.example", "sales@tenant.example",
         lambda to: dsign(msg("Sales <sales@tenant.example>", to), "tenant.example",
                          [b"from", b"subject", b"date", b"message-id"]), False),
        ("subdomain-signer", SELLER, "bounces@mail.shop.example",
         lambda to: sign(msg(SELLER, to), "mail.shop.example"), False),
        ("ed25519", SELLER, SELLER,
         lambda to: sign(msg(SELLER, to), "shop.example", selector="ed",
                         keyname="shop.example-ed", algorithm="ed25519"), False),
        ("utf8-display-name-raw", SELLER, SELLER,
         lambda to: sign(msg(f"Jürgen Müller <{SELLER}>", to), "shop.example"), True),
        ("utf8-display-name-encoded", SELLER, SELLER,
         lambda to: sign(msg(f"=?utf-8?q?J=C3=BCrgen_M=C3=BCller?= <{SELLER}>", to),
                         "shop.example"), False),
        ("display-name-with-parentheses", SELLER, SELLER,
         lambda to: sign(msg(f'"Shop GmbH (Kundendienst)" <{SELLER}>', to), "shop.example"),
         False),
        ("display-name-comma-quoted", SELLER, SELLER,
         lambda to: sign(msg(f'"Smith, John" <{SELLER}>', to), "shop.example"), False),
        ("utf8-local-part-idn-domain", "jürgen@müller.example", "jürgen@müller.example",
         lambda to: sign(msg("Jürgen <jürgen@müller.example>", to), "xn--mller-kva.example"),
         True),
        ("uppercase-a-label", "verkauf@müller.example", "verkauf@xn--mller-kva.example",
         lambda to: sign(msg("verkauf@XN--MLLER-KVA.EXAMPLE", to), "xn--mller-kva.example"),
         False),
        ("capitalised-registered", "John.Smith@Mixed.example", "john.smith@mixed.example",
         lambda to: sign(msg("John Smith <john.smith@mixed.example>", to), "mixed.example"),
         False),
        ("plus-tag-registered", "seller+market@shop.example", "seller+market@shop.example",
         lambda to: sign(msg("seller+market@shop.example", to), "shop.example"), False),
        ("quoted-printable-body", SELLER, SELLER,
         lambda to: sign(msg(SELLER, to, extra="Content-Transfer-Encoding: quoted-printable\r\n",
                             body="Gr=C3=BC=C3=9Fe, Ihr Paket ist unterwegs.=\r\n Danke.\r\n"),
                         "shop.example"), False),
        ("8bitmime-body", SELLER, SELLER,
         lambda to: sign(msg(SELLER, to, extra="Content-Transfer-Encoding: 8bit\r\n",
                             body="Grüße, Ihr Paket ist unterwegs. Größe M passt.\r\n"),
                         "shop.example"), True),
        ("long-lines-folded-998", SELLER, SELLER,
         lambda to: sign(_folded_998(to), "shop.example"), False),
        ("trailing-dot-from-domain", SELLER, SELLER,
         lambda to: sign(msg("seller@shop.example.", to), "shop.example"), False),
    ]  # fmt: skip
    assert len(cases) == LEGIT_COUNT
    failures: list[str] = []
    async with auth_relay(make_settings, world, sink) as relay:
        for n, (name, registered, env, build, utf8) in enumerate(cases):
            view = await create_order(
                relay, order_id=f"113-4829302-{5520000 + n}", buyer=BUYER, seller=registered,
                seller_name="Shop GmbH",
            )  # fmt: skip
            if name.startswith("m365"):
                await orders.set_party(relay.engine, registered, allow_spf_only=False)
            raw = build(view.buyer_alias)
            if utf8:
                code, text = await _smtputf8_send(relay.port, env, [view.buyer_alias], raw)
            else:
                code, text = await send(relay.port, env, [view.buyer_alias], raw)
            if code != 250:
                failures.append(f"{name}: {code} {text}")
        assert failures == [], "\n".join(failures)
        got = await sink.wait_for(len(cases))
    assert len(got) == len(cases)


def test_battery_counts() -> None:
    assert len(SPOOFS) >= 45 and LEGIT_COUNT >= 19
