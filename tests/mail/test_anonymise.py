"""Anonymisation below the top-level header (relay.mail.anonymise via rewrite_message):
real clients' shapes, attached originals at every depth, delivery reports, MIME ids."""

from __future__ import annotations

import base64
import binascii
import email
import email.policy
import random
import re
from datetime import UTC, datetime
from email.message import Message

import pytest

from relay.mail.rewrite import Rewrite, rewrite_message
from tests.mail import client_shapes as shapes
from tests.mail.leakscan import leaks

SELLER = shapes.Person("Shop GmbH", "John.Smith@Shop.example")
BUYER = shapes.Person("Alice Buyer", "alice@buyer.example")
S_ALIAS = "s-abcdefghijklmnopqrst@relay.example"
B_ALIAS = "b-zyxwvutsrqponmlkjihg@relay.example"
THIRD = ["friend@third.example", "third.example"]


def rewrite(raw: bytes, writer: shapes.Person = SELLER, *, message_id: str = "") -> bytes:
    """``writer`` writes through the relay to the other party."""
    reader = BUYER if writer is SELLER else SELLER
    alias = S_ALIAS if writer is SELLER else B_ALIAS
    rw = Rewrite(
        from_name=f"{writer.name} via Marketplace",
        from_alias=alias,
        to_name=reader.name,
        to_address=reader.address,
        marketplace="Marketplace",
        message_id=message_id or "unit0000000000000000@relay.example",
        in_reply_to=(),
        references=(),
        hops=1,
        relay_host="mx.relay.example",
        now=datetime(2026, 11, 27, 12, 0, tzinfo=UTC),
        sender_addresses=(writer.address.lower(),),
    )
    return rewrite_message(raw, rw)


def secrets_of(writer: shapes.Person) -> list[str]:
    return [writer.address, writer.domain, *THIRD]


def parse(data: bytes) -> Message:
    return email.message_from_bytes(data, policy=email.policy.compat32)


def entities(msg: Message) -> list[Message]:
    """Every entity, descending into attached messages, also base64/QP-encoded ones."""
    out = [msg]
    payload = msg.get_payload()
    if isinstance(payload, list):
        if msg.get_content_maintype() == "message" and msg.get(
            "Content-Transfer-Encoding", ""
        ).lower() in ("base64", "quoted-printable"):
            return out + entities(parse(_raw_payload(msg)))
        for sub in payload:
            out += entities(sub)
    return out


def _raw_payload(msg: Message) -> bytes:
    body = "".join(p.as_string() for p in msg.get_payload())
    if msg["Content-Transfer-Encoding"].lower() == "base64":
        return base64.b64decode("".join(body.split()) + "===")
    return binascii.a2b_qp(body.encode())


SHAPES = {
    "thunderbird": lambda w, to: shapes.thunderbird(w, to),
    "gmail": lambda w, to: shapes.gmail(w, to),
    "apple_mail": lambda w, to: shapes.apple_mail(w, to, vcard=False),
    "outlook": lambda w, to: shapes.outlook(w, to, BUYER if w is SELLER else SELLER, to),
}


@pytest.mark.parametrize("writer", [SELLER, BUYER], ids=["seller", "buyer"])
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_client_shapes_leave_no_address_or_domain_of_the_writer(shape: str, writer) -> None:
    to = B_ALIAS if writer is SELLER else S_ALIAS
    out = rewrite(SHAPES[shape](writer, to), writer)
    assert out.isascii()
    assert leaks(out, secrets_of(writer)) == []
    # every header section at every depth holds only allowlisted fields
    allowed = {"received", "x-relay-hops", "from", "reply-to", "to", "message-id", "subject",
               "date", "mime-version", "content-type", "content-transfer-encoding",
               "content-disposition", "content-id", "content-language", "content-description",
               "references", "in-reply-to", "cc", "auto-submitted",
               # the blocks of a message/delivery-status part
               "reporting-mta", "arrival-date", "final-recipient", "original-recipient",
               "action", "status", "last-attempt-date", "will-retry-until"}  # fmt: skip
    for ent in entities(parse(out)):
        assert {k.lower() for k in ent.keys()} <= allowed, ent.keys()


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_inline_images_still_resolve(shape: str) -> None:
    out = rewrite(SHAPES[shape](SELLER, B_ALIAS))
    ids, refs = set(), set()
    for ent in entities(parse(out)):
        if ent["Content-ID"]:
            ids.add(ent["Content-ID"].strip().strip("<>"))
        if ent.get_content_maintype() == "text":
            text = ent.get_payload(decode=True) or b""
            refs |= {r.decode() for r in re.findall(rb"cid:([^\s\"'<>\]]+)", text)}
    assert ids and refs, (ids, refs)
    assert refs <= ids
    assert all(i.endswith("@relay.example") for i in ids | refs)


def test_the_same_id_gets_the_same_new_id_only_within_one_copy() -> None:
    raw = shapes.thunderbird(SELLER, B_ALIAS)
    a = rewrite(raw, message_id="one@relay.example")
    b = rewrite(raw, message_id="two@relay.example")
    cid = lambda d: re.search(rb"Content-ID: <([^>]+)>", d).group(1)  # noqa: E731
    assert cid(a) != cid(b)
    assert cid(a) == cid(rewrite(raw, message_id="one@relay.example"))


def test_attached_original_keeps_content_and_names_parties_by_alias() -> None:
    out = rewrite(shapes.outlook(SELLER, B_ALIAS, BUYER, B_ALIAS))
    subject = "Question about order 113-4829301-5520417"
    inner = [e for e in entities(parse(out)) if e["Subject"] == subject]
    assert len(inner) == 1
    head = inner[0]
    assert head["From"] == f"<{B_ALIAS}>"  # the reader's own alias
    assert head["To"] == f'"Shop GmbH via Marketplace" <{S_ALIAS}>'  # the writer: by alias
    assert head["Cc"] is None  # accounts@ and a third party: left out
    for gone in ("Delivered-To", "X-Original-To", "Received", "Authentication-Results",
                 "ARC-Seal", "DKIM-Signature", "Return-Path", "List-Id", "Sender",
                 "Reply-To", "Disposition-Notification-To", "Return-Receipt-To",
                 "X-Forwarded-To"):  # fmt: skip
        assert head[gone] is None, gone
    assert head["Message-ID"].endswith("@relay.example>")
    assert head.get_payload(decode=True).startswith(b"Hello, is the blue jacket")


def test_delivery_report_fields_are_rewritten_or_dropped() -> None:
    out = rewrite(shapes.outlook(SELLER, B_ALIAS, BUYER, B_ALIAS))
    start = out.index(b"Content-Type: message/delivery-status")
    report = out[start : out.index(b"\r\n--", start)].decode()
    assert "Reporting-MTA: dns; mx.relay.example" in report
    assert f"Final-Recipient: rfc822; {S_ALIAS}" in report
    assert "Action: failed" in report and "Status: 5.1.1" in report
    for gone in ("Remote-MTA", "Diagnostic-Code", "X-Actual-Recipient", "Received-From-MTA",
                 "X-Postfix-Queue-ID"):  # fmt: skip
        assert gone not in report


def _multipart(*parts: bytes, ctype: str = "multipart/mixed", boundary: str = "b1") -> bytes:
    body = b"".join(b"--" + boundary.encode() + b"\r\n" + p + b"\r\n" for p in parts)
    return (
        f"From: Shop <{SELLER.address}>\r\nTo: {B_ALIAS}\r\nSubject: t\r\nMIME-Version: 1.0\r\n"
        f'Content-Type: {ctype}; boundary="{boundary}"\r\n\r\n'
    ).encode() + body + b"--" + boundary.encode() + b"--\r\n"


def _attached(msg: bytes, depth: int, cte: str = "7bit") -> bytes:
    for i in range(depth):
        enc = msg
        if cte == "base64" or (cte == "mixed" and i % 2):
            enc = base64.encodebytes(msg).replace(b"\n", b"\r\n")
            head = b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        else:
            head = b"Content-Type: message/rfc822\r\n\r\n"
        msg = (
            f"From: {SELLER.address}\r\nTo: {SELLER.address}\r\nSubject: level {i}\r\n"
            f"Delivered-To: {SELLER.address}\r\nMIME-Version: 1.0\r\n"
            f'Content-Type: multipart/mixed; boundary="L{i}"\r\n\r\n--L{i}\r\n'
        ).encode() + head + enc + f"\r\n--L{i}--\r\n".encode()
    return msg


def test_nested_originals_are_rewritten_at_every_depth() -> None:
    inner = shapes.received_original(BUYER, SELLER, B_ALIAS, seed="n")
    for cte in ("7bit", "base64", "mixed"):
        out = rewrite(_attached(inner, 8, cte))
        assert leaks(out, secrets_of(SELLER)) == [], cte
        assert out.count(b"level ") == 7 or b"level" in out
        assert b"Hello, is the blue jacket" in out or cte != "7bit"


def test_too_deep_nesting_becomes_a_visible_note() -> None:
    inner = shapes.received_original(BUYER, SELLER, B_ALIAS, seed="deep")
    out = rewrite(_attached(inner, 40))
    assert leaks(out, secrets_of(SELLER)) == []
    assert b"nested too deeply" in out


@pytest.mark.parametrize(
    "ctype", ["message/partial; id=\"x@shop.example\"; number=1; total=2",
              "message/external-body; access-type=URL; URL=\"https://shop.example/x\"",
              "application/ms-tnef; name=\"winmail.dat\"", "application/vnd.ms-outlook"],
)  # fmt: skip
def test_parts_that_cannot_be_checked_are_replaced_by_a_note(ctype: str) -> None:
    part = f"Content-Type: {ctype}\r\n\r\nFrom: {SELLER.address}\r\n\r\nx\r\n".encode()
    out = rewrite(_multipart(b"Content-Type: text/plain\r\n\r\nsee attached\r\n", part))
    assert leaks(out, secrets_of(SELLER)) == []
    assert b"Marketplace removed a part of this message" in out
    assert b"see attached" in out
    assert len(parse(out).get_payload()) == 2


def test_part_headers_are_an_allowlist() -> None:
    part = (
        b"Content-Type: application/pdf; name=\"invoice.pdf\"\r\n"
        b"Content-Disposition: attachment; filename=\"invoice.pdf\"\r\n"
        b"Content-Transfer-Encoding: base64\r\nX-Attachment-Id: f_shop.example\r\n"
        b"Content-Location: https://shop.example/invoice.pdf\r\n"
        b"Content-Description: sent by John.Smith@Shop.example\r\n"
        b"Content-Base: https://shop.example/\r\nContent-MD5: abc\r\n"
        b"Received: from mx.shop.example\r\n\r\nJVBERi0=\r\n"
    )
    out = rewrite(_multipart(part))
    assert leaks(out, secrets_of(SELLER)) == []
    pdf = parse(out).get_payload()[0]
    assert pdf.get_filename() == "invoice.pdf" and pdf.get_payload(decode=True) == b"%PDF-"
    assert set(pdf.keys()) == {"Content-Type", "Content-Disposition", "Content-Transfer-Encoding"}


def test_a_description_without_an_address_is_kept() -> None:
    part = b"Content-Type: image/png\r\nContent-Description: photo of the parcel\r\n\r\nx\r\n"
    assert b"Content-Description: photo of the parcel" in rewrite(_multipart(part))


def test_a_boundary_that_names_a_host_is_reminted() -> None:
    text = b"Content-Type: text/plain\r\n\r\nhello\r\n"
    raw = _multipart(text, text, boundary="=_mail.shop.example_4711")
    out = rewrite(raw)
    assert leaks(out, secrets_of(SELLER)) == []
    parsed = parse(out)
    assert [p.get_payload() for p in parsed.get_payload()] == ["hello\r\n", "hello\r\n"]
    plain = _multipart(text, text, boundary="----=_NextPart_000_0001_01D9ABCD.12345678")
    assert b"----=_NextPart_000_0001_01D9ABCD.12345678" in rewrite(plain)


def test_related_start_parameter_follows_the_root_content_id() -> None:
    cid = f"root.1@{SELLER.domain}"
    html = f"Content-Type: text/html\r\nContent-ID: <{cid}>\r\n\r\n<p>hi</p>\r\n".encode()
    raw = _multipart(html, ctype=f'multipart/related; type="text/html"; start="<{cid}>"')
    parsed = parse(rewrite(raw))
    assert parsed.get_param("start") == parsed.get_payload()[0]["Content-ID"]


def test_an_eml_attached_as_octets_is_rewritten() -> None:
    inner = shapes.received_original(BUYER, SELLER, B_ALIAS, seed="eml")
    part = (
        b'Content-Type: application/octet-stream; name="original.eml"\r\n'
        b'Content-Disposition: attachment; filename="original.eml"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n"
    ) + base64.encodebytes(inner).replace(b"\n", b"\r\n")
    out = rewrite(_multipart(part))
    assert leaks(out, secrets_of(SELLER)) == []
    assert b"blue jacket" in base64.b64decode(out.split(b"base64\r\n\r\n")[1].split(b"--b1")[0])


def test_rfc822_headers_part() -> None:
    part = (
        b"Content-Type: text/rfc822-headers\r\n\r\n"
        + f"Received: by mx.{SELLER.domain}\r\nFrom: {SELLER.address}\r\n"
        f"To: friend@third.example\r\nSubject: hi\r\n".encode()
    )
    out = rewrite(_multipart(part))
    assert leaks(out, secrets_of(SELLER)) == []
    assert f"From: \"Shop GmbH via Marketplace\" <{S_ALIAS}>".encode() in out
    assert b"To: undisclosed-recipients:;" in out


def test_top_level_content_fields_are_filtered_too() -> None:
    raw = (
        f"From: {SELLER.address}\r\nTo: {B_ALIAS}\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
        f"Content-Type: text/html; charset=utf-8\r\nContent-ID: <top@{SELLER.domain}>\r\n"
        f"Content-Location: https://{SELLER.domain}/m\r\n\r\n"
        f'<img src="cid:img%40{SELLER.domain}">\r\n'
    ).encode()
    out = rewrite(raw)
    assert leaks(out, secrets_of(SELLER)) == []
    assert b"Content-Location" not in out and b"Content-ID: <" in out


def test_plain_and_clean_multipart_bodies_are_copied_verbatim() -> None:
    plain = (
        b"From: a@shop.example\r\nTo: b@relay.example\r\nSubject: s\r\n\r\nHello\r\n\r\nBye\r\n"
    )
    assert rewrite(plain).endswith(b"\r\n\r\nHello\r\n\r\nBye\r\n")
    text = b"Content-Type: text/plain; charset=utf-8\r\n\r\nhello\r\n"
    raw = _multipart(text, b"Content-Type: text/html\r\n\r\n<p>hello</p>\r\n")
    assert rewrite(raw).split(b"\r\n\r\n", 1)[1] == raw.split(b"\r\n\r\n", 1)[1]


def test_raw_utf8_and_latin1_header_values_leave_as_encoded_words() -> None:
    raw = (
        "From: Jürgen Müller <juergen@buyer.example>\r\nTo: x@relay.example\r\n"
        "Subject: Größe der Jacke – passt sie? " + "ä" * 80 + "\r\nMIME-Version: 1.0\r\n"
        'Content-Type: text/plain; charset=utf-8; name="Rechnung März.pdf"\r\n\r\nHallo\r\n'
    ).encode()
    out = rewrite(raw, BUYER)
    head = out.split(b"\r\n\r\n")[0]
    assert head.isascii()
    assert all(len(line) <= 998 for line in head.split(b"\r\n"))
    parsed = email.message_from_bytes(out, policy=email.policy.default)
    assert parsed["Subject"] == "Größe der Jacke – passt sie? " + "ä" * 80
    assert parsed.get_param("name") == "Rechnung März.pdf"
    # A legacy client's Latin-1 is read as the archive reads it (relay.mail.parse.header_text)
    latin = re.sub(rb"Subject: [^\r]*", "Subject: Größe?".encode("latin-1"), raw)
    out = rewrite(latin, BUYER)
    assert out.split(b"\r\n\r\n")[0].isascii()
    parsed = email.message_from_bytes(out, policy=email.policy.default)
    assert parsed["Subject"] == "Größe?"


def test_broken_structures_never_raise_and_never_leak() -> None:
    rnd = random.Random(9)
    seeds = [SHAPES[s](SELLER, B_ALIAS) for s in sorted(SHAPES)]
    for _ in range(300):
        data = bytearray(rnd.choice(seeds))
        for _ in range(rnd.randrange(1, 6)):
            i = rnd.randrange(len(data))
            op = rnd.randrange(3)
            if op == 0:
                del data[i : i + rnd.randrange(1, 200)]
            elif op == 1:
                data[i:i] = rnd.choice([b"\r\n", b"\r\n\r\n", b"--", b"=", b";", b"<", b"\r\n--b"])
            else:
                data[i : i + 1] = bytes([rnd.randrange(256)])
        out = rewrite(bytes(data))
        head = out.split(b"\r\n\r\n", 1)[0]
        assert SELLER.address.lower().encode() not in head.lower()
