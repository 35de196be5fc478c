"""Encoded ``message/*`` parts are decoded before they are parsed (RFC 2046 allows only
7bit/8bit/binary there; the stdlib parses the encoded text as if it were a message)."""

from __future__ import annotations

import base64
import email
import email.policy
import quopri

from tests.policy.helpers import ctx

ORIGINAL = (
    b"Received: from mail.seller-domain.example (mail.seller-domain.example [192.0.2.7])"
    b" by mx.seller-domain.example with ESMTPS id 4A1B2C3D4E for <kate@seller-domain.example>;"
    b" Mon, 23 Nov 2026 10:00:00 +0000\r\n"
    b"DKIM-Signature: v=1; a=rsa-sha256; d=seller-domain.example; s=sel; h=from:to;"
    b" bh=abcdefghijklmnopqrstuvwxyz0123456789=; b=abcdefghijklmnopqrstuvwxyz\r\n"
    b"From: Kate <kate@seller-domain.example>\r\n"
    b"To: buyer@relay.example\r\nSubject: Original\r\n\r\n"
    b"Call me on +44 20 7946 0958 about the lamp.\r\n"
)


def _wrapping(cte: str, body: bytes) -> bytes:
    return (
        b"From: Shop <shop@shop.example>\r\nTo: b-abcdefgh@relay.example\r\n"
        b"Subject: Fwd: Original\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
        b"--b1\r\nContent-Type: text/plain\r\n\r\nSee below.\r\n"
        b"--b1\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: "
        + cte.encode() + b"\r\n\r\n" + body + b"\r\n--b1--\r\n"
    )


def _attached(out: bytes) -> email.message.Message:
    msg = email.message_from_bytes(out, policy=email.policy.default)
    part = next(p for p in msg.walk() if p.get_content_type() == "message/rfc822")
    assert part["Content-Transfer-Encoding"] in ("7bit", "8bit")
    return part.get_payload()[0]


def _check(engine, raw: bytes) -> None:
    v = engine.evaluate(raw, ctx("seller-to-buyer"))
    assert v.action == "redact", v
    assert any(f.kind == "phone_number" for f in v.findings)
    inner = _attached(v.message)
    # the attached original is a message again: its header section is headers, not text
    assert inner["Subject"] == "Original"
    assert "seller-domain.example" in str(inner["Received"])
    body = inner.get_content()
    assert "Received:" not in body and "DKIM-Signature" not in body
    assert "7946" not in body and "[phone number removed]" in body


def test_quoted_printable_attached_message_is_decoded_then_judged(engine):
    _check(engine, _wrapping("quoted-printable", quopri.encodestring(ORIGINAL)))


def test_base64_attached_message_is_decoded_then_judged(engine):
    _check(engine, _wrapping("base64", base64.encodebytes(ORIGINAL).replace(b"\n", b"\r\n")))
