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

from relay import replies
from relay.replies import Reply

_HEADER_END = re.compile(rb"\r\n\r\n")
HOPS_HEADER = "X-Relay-Hops"
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

    def decoded(self, name: str) -> str:
        """The first ``name`` field, RFC 2047-decoded ("" when absent). The stdlib's
        header registry would build a class per call; decode_header does not."""
        values = self.raw_values(name)
        if not values:
            return ""
        value = _utf8(values[0])
        try:
            return str(make_header(decode_header(value)))
        except (HeaderParseError, UnicodeError, LookupError, ValueError):
            return value

    def first(self, name: str) -> str:
        values = self.raw_values(name)
        return values[0] if values else ""

    def raw_values(self, name: str) -> list[str]:
        """Header values as sent (unfolded, not decoded): safe to copy verbatim."""
        out = []
        for key, value in self.headers.raw_items():
            if key.lower() == name.lower():
                out.append(" ".join(str(value).split()))
        return out

    @property
    def hops(self) -> int:
        received = len(self.headers.get_all("Received") or [])
        carried = self.first(HOPS_HEADER).strip()
        return received + (int(carried) if carried.isdigit() and len(carried) < 4 else 0)


def _utf8(value: str) -> str:
    """Raw 8-bit header bytes arrive as surrogate escapes; most are UTF-8 in practice."""
    try:
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeError:
        return value


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


def intake(raw: bytes, *, max_hops: int) -> Inbound | Reply:
    if has_bare_line_ending_or_nul(raw):
        return replies.BAD_LINE_ENDINGS
    header_bytes, body = split_message(raw)
    try:
        headers = _PARSER.parsebytes(header_bytes + b"\r\n")
    except Exception:  # the stdlib parser is lenient; anything it raises is malformed input
        return replies.BAD_HEADER
    if len(headers.get_all("From") or []) > 1:
        return replies.MULTIPLE_FROM
    inbound = Inbound(
        raw=raw,
        sha256=hashlib.sha256(raw).hexdigest(),
        headers=headers,
        header_bytes=header_bytes,
        body=body,
    )
    if inbound.hops > max_hops:
        return replies.LOOP
    return inbound
