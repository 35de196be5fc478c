"""Decoding hostile archived mail for display: never raises, never hangs, caps size."""

from __future__ import annotations

from relay.web import mime
from relay.web.html import marked


def test_broken_charset_and_transfer_encoding_still_decode() -> None:
    raw = (
        b"From: a@b.example\r\nSubject: =?x-unknown?q?Hi?=\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="B"\r\n\r\n'
        b"--B\r\nContent-Type: text/plain; charset=x-no-such-charset\r\n\r\nbody \xff\r\n"
        b"--B\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!\r\n"
        b'--B\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename="x.pdf"'
        b"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--B--\r\n"
    )
    d = mime.decode(raw)
    assert d is not None
    assert len(d.parts) == 2 and "body" in d.parts[0].text
    assert [(a.filename, a.content_type, a.size) for a in d.attachments] == [
        ("x.pdf", "application/pdf", 5)
    ]
    assert dict(d.headers)["From"] == "a@b.example"


def test_big_parts_are_truncated_and_no_copy_is_none() -> None:
    raw = b"Subject: big\r\n\r\n" + b"x" * (mime.MAX_PART_CHARS + 10)
    d = mime.decode(raw)
    assert d is not None and d.parts[0].truncated
    assert len(d.parts[0].text) == mime.MAX_PART_CHARS
    assert mime.decode(None) is None
    assert mime.decode(b"\x00\xff garbage without headers") is not None


def test_markers_and_excerpts_are_marked_without_markup_from_the_text() -> None:
    out = marked('<b>call</b> [phone number removed] or 555-1234 "x"', ["555-1234", "<b>"])
    assert '<mark class="redaction">[phone number removed]</mark>' in out
    assert '<mark class="found">555-1234</mark>' in out
    assert '<mark class="found">&lt;b&gt;</mark>call&lt;/b&gt;' in out
    assert "&#34;x&#34;" in out  # quotes escaped (markupsafe writes &#34;)
