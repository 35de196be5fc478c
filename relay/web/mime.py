"""Decoding an archived message into what a person reads: headers, text, attachments.

Everything here is hostile input: a broken charset, a lying Content-Type or a giant part
must neither raise nor stall a page. Text is capped per part, parse errors become a note
in the output rather than a 500, and HTML bodies are returned as HTML *source* for the
templates to escape or sanitise (never rendered as it came).
"""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass, field
from email.message import Message, MIMEPart

MAX_PART_CHARS = 200_000
MAX_PARTS = 50
SHOWN_HEADERS = ("From", "To", "Cc", "Reply-To", "Subject", "Date", "Message-ID",
                 "In-Reply-To", "References")  # fmt: skip


@dataclass
class Part:
    content_type: str
    text: str
    truncated: bool = False


@dataclass
class Attachment:
    content_type: str
    filename: str
    size: int


@dataclass
class Decoded:
    headers: list[tuple[str, str]] = field(default_factory=list)
    parts: list[Part] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def guess_decode(raw: bytes) -> str:
    """Bytes of unknown charset: UTF-8 if they are valid UTF-8 (most 8-bit mail today),
    else Windows-1252 (what "Latin-1" mail really is), else Latin-1, which never fails."""
    for charset in ("utf-8", "cp1252"):
        try:
            return raw.decode(charset)
        except UnicodeDecodeError:
            continue
    return raw.decode("latin-1")


def _payload_text(part: MIMEPart) -> str:
    """A text part as str. Without a declared charset the email package reads 8-bit
    bytes as ASCII and leaves replacement characters, so those are guessed instead."""
    if part.get_param("charset") is None:
        raw = part.get_payload(decode=True)
        if isinstance(raw, bytes):
            return guess_decode(raw)
    try:
        content = part.get_content()
        if isinstance(content, str):
            return content
    except (LookupError, UnicodeError, ValueError, AssertionError, KeyError):
        pass
    raw = part.get_payload(decode=True)
    if not isinstance(raw, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return raw.decode(charset, "replace")
    except LookupError:
        return raw.decode("utf-8", "replace")


def text_of(part: MIMEPart) -> str:
    """The decoded text of one text part (see ``_payload_text``), never raising."""
    return _payload_text(part)


def _header(msg: Message, name: str) -> str | None:
    try:
        value = msg.get(name)
    except (ValueError, IndexError, AttributeError, TypeError):
        # the stored value, unparsed: what the header policy could not read
        value = next((v for k, v in msg.raw_items() if k.lower() == name.lower()), None)
    return None if value is None else str(value)


def decode(data: bytes | None) -> Decoded | None:
    """Headers worth showing, every text part in order, and a list of the attachments."""
    if data is None:
        return None
    out = Decoded()
    try:
        msg = email.message_from_bytes(data, policy=email.policy.default)
    except Exception as err:  # the email package raises all sorts on hostile input
        out.problems.append(f"could not parse the message ({type(err).__name__})")
        text = data.decode("utf-8", "replace")
        out.parts.append(Part("text/plain", text[:MAX_PART_CHARS], len(text) > MAX_PART_CHARS))
        return out
    for name in SHOWN_HEADERS:
        value = _header(msg, name)
        if value is not None:
            out.headers.append((name, value))
    for count, part in enumerate(msg.walk()):
        if count >= MAX_PARTS:
            out.problems.append(f"more than {MAX_PARTS} MIME parts: the rest is not shown")
            break
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        disposition = part.get_content_disposition()
        if ctype in ("text/plain", "text/html") and disposition != "attachment":
            text = _payload_text(part)
            out.parts.append(Part(ctype, text[:MAX_PART_CHARS], len(text) > MAX_PART_CHARS))
        else:
            raw = part.get_payload(decode=True)
            size = len(raw) if isinstance(raw, bytes) else 0
            try:
                name = part.get_filename() or ""
            except (ValueError, IndexError, TypeError):
                name = ""
            out.attachments.append(Attachment(ctype, name, size))
    for defect in getattr(msg, "defects", [])[:5]:
        out.problems.append(type(defect).__name__)
    return out
