"""The values a message's path passes along: the session, the sender check, the Message.

A ``Message`` is read ONCE, at intake (relay.mail.parse.intake builds it, after the
structure scan, off the event loop), and every later stage reads that one value instead
of re-parsing the bytes: the sender check (its strict From, its To/Cc values), threading
(In-Reply-To, References), the policy (the bytes, the header section), the rewrite (the
hop count, the original Message-ID), the archive record (From, decoded Subject) and the
search text (the decoded text parts). Before it there were five readers of the same bytes
and the From header was parsed three times, each reader slightly differently.

Plain values only: nothing here does I/O or imports another package of ours (the header
readers that need relay's own rules, the strict From reader above all, run in intake and
leave their result here). The one lazy part is the decoded text: a message refused at
the sender check never needs it, so ``text_parts`` parses the body only when asked, once.
"""

from __future__ import annotations

import dataclasses
import email
import email.message
import email.policy
import html
import re
from dataclasses import dataclass, field
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from functools import cached_property
from typing import Any

from relay.core.replies import Reply

HOPS_HEADER = "X-Relay-Hops"
TEXT_SCAN = 512 * 1024  # bytes of a message parsed for its text parts
MAX_TEXT = 100_000  # characters of readable text kept (the archive's search text)


@dataclass(frozen=True)
class SessionInfo:
    """The SMTP session a transaction came in on, as the archive records it."""

    session_id: str
    client_ip: str
    helo: str
    mail_from: str


@dataclass(frozen=True)
class SenderCheck:
    """Outcome of the sender check: ``refusal`` is None for a participant; ``auth`` is the
    evidence archived either way."""

    refusal: Reply | None
    auth: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TextPart:
    """One decoded text part that is not an attachment: ``subtype`` ``plain``, ``html``…"""

    subtype: str
    text: str


@dataclass(frozen=True)
class Message:
    """One message as received, read once.

    ``fields`` is the one reading of the header section that intake checked: every field
    as (lower-case name, unfolded value bytes), in order. ``from_mailbox`` is the strict
    From reading (relay.authn.fromaddr.single_from: exactly one plain mailbox, the
    domain as A-label) or "" with ``from_error`` saying why not; ``sender`` is its
    comparison key (relay.mail.address.canonical_address) or None.
    """

    raw: bytes
    sha256: str
    header_bytes: bytes  # the header section, with its final CRLF
    body_offset: int  # where the body starts in ``raw``
    fields: tuple[tuple[str, bytes], ...]
    from_mailbox: str = ""
    from_error: str = ""
    sender: str | None = None
    subject: str = ""  # the first Subject, RFC 2047-decoded

    @property
    def body(self) -> bytes:
        return self.raw[self.body_offset :]

    @property
    def from_domain(self) -> str:
        """The strict From's domain (A-label), "" when there is no plain one."""
        return self.from_mailbox.rpartition("@")[2]

    # -- header fields ------------------------------------------------------------------

    def raw_values(self, name: str) -> list[str]:
        """Header values as sent (unfolded, not RFC 2047-decoded), as text: raw 8-bit
        bytes read as UTF-8 (RFC 6532), else as Windows-1252; whitespace runs as one."""
        key = name.lower()
        return [" ".join(header_text(v).split()) for n, v in self.fields if n == key]

    def header_values(self, name: str) -> list[str]:
        """The values the sender check reads (relay.authn.fromaddr.header_values gave the
        same from the bytes): undecoded, UTF-8 with U+FFFD for anything else, stripped."""
        key = name.lower()
        return [v.decode("utf-8", "replace").strip() for n, v in self.fields if n == key]

    def first(self, name: str) -> str:
        values = self.raw_values(name)
        return values[0] if values else ""

    def get(self, name: str, failobj: Any = None) -> Any:
        """The first ``name`` field's value or ``failobj``: what relay.mail.autoreply and
        relay.ratelimits ask of a header mapping (``email.message.Message.get``)."""
        values = self.raw_values(name)
        return values[0] if values else failobj

    def decoded(self, name: str) -> str:
        """The first ``name`` field, RFC 2047-decoded ("" when absent)."""
        values = self.raw_values(name)
        return decode_words(values[0]) if values else ""

    @property
    def hops(self) -> int:
        """Received fields plus the hop count a relay before us carried over."""
        received = sum(1 for n, _ in self.fields if n == "received")
        carried = self.first(HOPS_HEADER).strip()
        return received + (int(carried) if carried.isdigit() and len(carried) < 4 else 0)

    # -- crossing a process boundary ----------------------------------------------------

    def without_raw(self) -> Message:
        """This Message without its bytes (and with what was decoded of them), for the way
        back from a content worker to the process that sent them (relay.intake.read):
        that process holds the bytes already, and a second copy of a 25 MB message there
        would double its memory. Only ``with_raw`` may be asked of the result."""
        return self._copy(b"")

    def with_raw(self, raw: bytes) -> Message:
        """The Message again, with ``raw``: the very bytes it was read from."""
        return self._copy(raw)

    def _copy(self, raw: bytes) -> Message:
        copy = dataclasses.replace(self, raw=raw)
        for cached in ("text_parts", "readable_text"):
            if cached in self.__dict__:
                copy.__dict__[cached] = self.__dict__[cached]
        return copy

    # -- the body, lazily ---------------------------------------------------------------

    @cached_property
    def text_parts(self) -> tuple[TextPart, ...]:
        """The decoded text parts that are not attachments, in the first ``TEXT_SCAN``
        bytes (text parts come first in practically every message), parsed on first use.
        Never raises: a body the parser chokes on has no text parts."""
        return text_parts(self.raw[:TEXT_SCAN])

    @cached_property
    def readable_text(self) -> str:
        """What a reader reads, for search: the plain parts, or the HTML parts with their
        tags stripped when there is no plain one; whitespace runs as one, bounded. Does
        not keep the parts when nobody asked for them: a Message read in a content worker
        crosses back to the event loop with its text, not twice its text."""
        parts = self.__dict__.get("text_parts")
        return readable_text(parts if parts is not None else text_parts(self.raw[:TEXT_SCAN]))


def header_text(value: bytes) -> str:
    """Header bytes as text, total over any bytes. UTF-8 first (RFC 6532, and what nearly
    every 8-bit header is today); legacy clients' raw Latin-1 then reads as Windows-1252
    (its superset), and the few bytes that are neither become U+FFFD."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return value.decode("cp1252")
    except UnicodeDecodeError:
        return value.decode("utf-8", "replace")


_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(value: str) -> str:
    """No lone surrogates (what the stdlib makes of undecodable bytes) and no NUL: such a
    string cannot be encoded, hashed or stored, and must never fail a stage."""
    if value.isascii():
        return value.replace("\x00", "\ufffd")
    return _SURROGATE.sub("\ufffd", value).replace("\x00", "\ufffd")


def decode_words(value: str) -> str:
    """RFC 2047 encoded-words decoded; the value as it is when it has none or they are
    broken. The stdlib's header registry would build a class per call; this does not."""
    if "=?" not in value:
        return value
    try:
        if value.isascii():
            return clean_text(str(make_header(decode_header(value))))
        # Raw UTF-8 beside encoded-words (RFC 6532 and 2047 mixed): decode_header only
        # decodes the words of an ASCII string, so carry the raw bytes through Latin-1.
        parts = decode_header(value.encode("utf-8").decode("latin-1"))
        text = str(make_header([
            (p, c) if c not in (None, "unknown-8bit") else (_raw(p), "utf-8")
            for p, c in parts
        ]))  # fmt: skip
        return clean_text(" ".join(text.split()))
    except (HeaderParseError, UnicodeError, LookupError, ValueError):
        return value


def _raw(part: bytes | str) -> bytes:
    """A part decode_header left undecoded, back to UTF-8 bytes (from the Latin-1 carry)."""
    data = part.encode("latin-1") if isinstance(part, str) else part
    return header_text(data).encode("utf-8")


# -- text parts ---------------------------------------------------------------------------

_TAG = re.compile(r"<(script|style)\b.*?</\1\s*>|<[^>]*>", re.S | re.I)
_WS = re.compile(r"\s+")


def _leaves(msg: email.message.Message) -> list[email.message.Message]:
    out, stack = [], [msg]
    while stack:
        part = stack.pop()
        if part.is_multipart():
            payload = part.get_payload()
            stack.extend(reversed([p for p in payload if isinstance(p, email.message.Message)]))
        else:
            out.append(part)
    return out


def _decode(part: email.message.Message) -> str:
    data = part.get_payload(decode=True) or b""
    if not isinstance(data, bytes):
        return ""
    try:
        return data.decode(part.get_content_charset() or "utf-8", errors="replace")
    except LookupError:
        return data.decode("utf-8", errors="replace")


def text_parts(raw: bytes) -> tuple[TextPart, ...]:
    """The decoded text parts of ``raw`` that are not attachments (compat32: the values
    stay strings, no header registry). Never raises."""
    try:
        msg = email.message_from_bytes(raw, policy=email.policy.compat32)
        return tuple(
            TextPart(part.get_content_subtype(), _decode(part))
            for part in _leaves(msg)
            if part.get_content_maintype() == "text" and not part.get_filename()
        )
    except Exception:  # text is for search: a body the parser chokes on has none
        return ()


def readable_text(parts: tuple[TextPart, ...], limit: int = MAX_TEXT) -> str:
    """The plain parts, or the tag-stripped HTML parts when there is no plain one."""
    plain = [p.text for p in parts if p.subtype != "html"]
    text = " ".join(plain or [html.unescape(_TAG.sub(" ", p.text)) for p in parts])
    return _WS.sub(" ", text).strip()[:limit]
