"""DATA intake: raw bytes -> the one Message, refusing smuggling and ambiguous headers first.

Bare CR, bare LF and NUL are refused outright rather than repaired: different parsers
split such lines differently, which is how SMTP smuggling and header injection work.
``intake`` is the only reader of a message's header section on the way in: it splits the
fields once (``header_fields``), reads the From strictly once (relay.authn.fromaddr) and
decodes the Subject once, and every later stage reads the ``Message`` it returns
(relay.core.values).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re

from relay.authn.fromaddr import FromError, canonical_address, single_from
from relay.core import replies
from relay.core.replies import Reply
from relay.core.values import HOPS_HEADER as HOPS_HEADER
from relay.core.values import Message, decode_words
from relay.core.values import clean_text as clean_text
from relay.core.values import header_text as header_text

_HEADER_END = re.compile(rb"\r\n\r\n")
# RFC 5322 §3.6: fields a message carries at most once.
ONCE_ONLY = (
    "from", "sender", "reply-to", "to", "cc", "bcc", "message-id", "in-reply-to",
    "references", "subject", "date",
)  # fmt: skip
Inbound = Message  # the name the stages used before the Message moved to relay.core


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


def intake(raw: bytes, *, max_hops: int) -> Message | Reply:
    """The one reading of ``raw``, or the refusal: line endings, the header section
    (``header_fields``), the hop count; then the strict From and the decoded Subject."""
    if has_bare_line_ending_or_nul(raw):
        return replies.BAD_LINE_ENDINGS
    header_bytes, body = split_message(raw)
    fields = header_fields(header_bytes)
    if isinstance(fields, Reply):
        return fields
    message = Message(
        raw=raw,
        sha256=hashlib.sha256(raw).hexdigest(),
        header_bytes=header_bytes,
        body_offset=len(raw) - len(body),
        fields=tuple(fields),
    )
    if message.hops > max_hops:
        return replies.LOOP
    from_mailbox, from_error, sender = "", "", None
    try:
        from_mailbox = single_from(message.header_values("from"))
        sender = canonical_address(from_mailbox)
    except FromError as err:
        from_error = str(err)
    return dataclasses.replace(
        message,
        from_mailbox=from_mailbox,
        from_error=from_error,
        sender=sender,
        subject=decode_words(message.first("subject")),
    )
