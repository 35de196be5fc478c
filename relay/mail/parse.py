"""DATA intake: raw bytes -> Inbound, refusing smuggling and ambiguous headers first.

Bare CR, bare LF and NUL are refused outright rather than repaired: different parsers
split such lines differently, which is how SMTP smuggling and header injection work.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from email import policy
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesHeaderParser

from relay.core import replies
from relay.core.replies import Reply

_HEADER_END = re.compile(rb"\r\n\r\n")
HOPS_HEADER = "X-Relay-Hops"
# RFC 5322 §3.6: fields a message carries at most once.
ONCE_ONLY = (
    "from", "sender", "reply-to", "to", "cc", "bcc", "message-id", "in-reply-to",
    "references", "subject", "date",
)  # fmt: skip
# compat32 keeps header values as plain strings: the structured header registry of
# policy.default costs milliseconds per message on the event loop, so only the few
# headers that need it are parsed structurally (``structured``).
_PARSER = BytesHeaderParser(policy=policy.compat32)


@dataclass(frozen=True)
class Inbound:
    raw: bytes
    sha256: str
    headers: Message  # the header section only (compat32); the body stays bytes in ``raw``
    header_bytes: bytes
    body: bytes
    # Every field as (lower-case name, raw unfolded value bytes), in order: the one reading
    # of the header section that intake checked, and what the accessors below decode.
    fields: tuple[tuple[str, bytes], ...] = ()

    def decoded(self, name: str) -> str:
        """The first ``name`` field, RFC 2047-decoded ("" when absent). The stdlib's
        header registry would build a class per call; decode_header does not."""
        values = self.raw_values(name)
        if not values:
            return ""
        value = values[0]
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

    def first(self, name: str) -> str:
        values = self.raw_values(name)
        return values[0] if values else ""

    def raw_values(self, name: str) -> list[str]:
        """Header values as sent (unfolded, not RFC 2047-decoded), as text: raw 8-bit bytes
        read as UTF-8 (RFC 6532), else as Windows-1252; never a lone surrogate."""
        key = name.lower()
        return [" ".join(header_text(v).split()) for n, v in self.fields if n == key]

    @property
    def hops(self) -> int:
        received = sum(1 for n, _ in self.fields if n == "received")
        carried = self.first(HOPS_HEADER).strip()
        return received + (int(carried) if carried.isdigit() and len(carried) < 4 else 0)


def _raw(part: bytes | str) -> bytes:
    """A part decode_header left undecoded, back to UTF-8 bytes (from the Latin-1 carry)."""
    data = part.encode("latin-1") if isinstance(part, str) else part
    return header_text(data).encode("utf-8")


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


def has_bare_line_ending_or_nul(raw: bytes) -> bool:
    """Bare CR, bare LF or NUL anywhere. Every CR must pair with an LF and vice versa, so
    counting is enough, and three C-speed counts beat a regex over a large message."""
    pairs = raw.count(b"\r\n")
    return b"\x00" in raw or raw.count(b"\r") != pairs or raw.count(b"\n") != pairs


def split_message(raw: bytes) -> tuple[bytes, bytes]:
    """Header section (with its final CRLF) and body; a message may have no body."""
    if raw.startswith(b"\r\n"):
        return b"", raw[2:]
    m = _HEADER_END.search(raw)
    if m is None:
        return raw, b""
    return raw[: m.start() + 2], raw[m.end() :]


_FTEXT = re.compile(rb"[!-9;-~]+")


def header_fields(header_bytes: bytes) -> list[tuple[str, bytes]] | Reply:
    """The header section as (lower-case name, unfolded value) pairs, or a refusal.

    One strict reading that every later stage agrees with. Refused rather than guessed:
    a line that is neither a field nor a continuation (the stdlib would end the header
    section there, other parsers would not), a field name outside RFC 5322 ftext, and the
    obsolete whitespace before the colon (DKIM, the stdlib and mail clients each treat it
    differently). Counting comes first, so a doubled field is named even in those forms.
    """
    fields: list[tuple[bytes, bytes, bool]] = []  # name, value, obsolete form
    bad: Reply | None = None
    for line in header_bytes.split(b"\r\n"):
        if not line:
            continue
        if line[:1] in (b" ", b"\t"):
            if not fields:
                return replies.BAD_HEADER
            name, value, obsolete = fields[-1]
            fields[-1] = (name, value + b" " + line.strip(b" \t"), obsolete)
            continue
        name, colon, value = line.partition(b":")
        stripped = name.rstrip(b" \t")
        if not colon or not _FTEXT.fullmatch(stripped):
            bad = bad or replies.BAD_HEADER
            if not colon:
                continue
        fields.append((stripped.lower(), value.strip(b" \t"), stripped != name))
    counts: dict[bytes, int] = {}
    for name, _, _ in fields:
        counts[name] = counts.get(name, 0) + 1
    for once in ONCE_ONLY:
        if counts.get(once.encode(), 0) > 1:
            return replies.duplicate_field(once)
    if bad is not None:
        return bad
    for name, _, obsolete in fields:
        if obsolete:
            return replies.obsolete_field(name.decode("ascii"))
    return [(name.decode("ascii"), value) for name, value, _ in fields]


def intake(raw: bytes, *, max_hops: int) -> Inbound | Reply:
    if has_bare_line_ending_or_nul(raw):
        return replies.BAD_LINE_ENDINGS
    header_bytes, body = split_message(raw)
    fields = header_fields(header_bytes)
    if isinstance(fields, Reply):
        return fields
    try:
        headers = _PARSER.parsebytes(header_bytes + b"\r\n")
    except Exception:  # the stdlib parser is lenient; anything it raises is malformed input
        return replies.BAD_HEADER
    inbound = Inbound(
        raw=raw,
        sha256=hashlib.sha256(raw).hexdigest(),
        headers=headers,
        header_bytes=header_bytes,
        body=body,
        fields=tuple(fields),
    )
    if inbound.hops > max_hops:
        return replies.LOOP
    return inbound
