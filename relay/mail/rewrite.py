"""The anonymising rewrite: an allowlist, never a blocklist, at every depth.

Only headers that cannot name the sender survive (Subject, Date, MIME-Version,
Auto-Submitted, and the Content-* fields relay.mail.anonymise allows); From, To,
Reply-To and Message-ID are set by us; In-Reply-To and References are translated through
the message-id table. Everything else, Received lines, DKIM signatures,
Authentication-Results, X-Mailer, Return-Path, Cc, is dropped, because every one of them
has been seen to carry a real address. The body is walked by relay.mail.anonymise: part
headers, attached messages, delivery reports and Content-ID/cid: pairs get the same rule.
Kept values with raw 8-bit bytes leave as RFC 2047/2231 (relay.mail.fields).
"""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime, formataddr

from relay.mail import fields as F
from relay.mail.anonymise import Anonymiser, Parties
from relay.mail.mime_ids import IdMinter
from relay.mail.parse import HOPS_HEADER, split_message

KEEP = {"subject": "Subject", "date": "Date", "mime-version": "MIME-Version",
        "auto-submitted": "Auto-Submitted"}  # fmt: skip
_MSGID = re.compile(r"<([^<>\s]{1,250})>")


def new_message_id(domain: str) -> str:
    token = base64.b32encode(secrets.token_bytes(15)).decode().lower()
    return f"{token}@{domain}"


def message_ids(value: str) -> list[str]:
    """The msg-ids of an In-Reply-To or References value, without brackets."""
    return _MSGID.findall(value)


@dataclass(frozen=True)
class Rewrite:
    """Everything the delivered header section is built from; pure data, testable."""

    from_name: str
    from_alias: str
    to_name: str
    to_address: str
    marketplace: str
    message_id: str
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    hops: int
    relay_host: str
    now: datetime
    # The writer's real addresses: where an attached message names them, the reader sees
    # the writer's alias instead. Any other address there is left out.
    sender_addresses: tuple[str, ...] = ()


def display_name(name: str, fallback: str, marketplace: str) -> str:
    return f"{name or fallback} via {marketplace}"


def _header(name: str, value: str) -> bytes:
    """Values are ASCII and bounded by construction (names are cleaned at provisioning);
    only an address with a UTF-8 local part stays UTF-8 (an SMTPUTF8 delivery)."""
    return F.make(name, value.replace("\r\n", "\n").replace("\n", "\r\n"))


def _kept(header_bytes: bytes) -> tuple[list[bytes], list[tuple[str, bytes]]]:
    """The kept top-level fields (8-bit values re-encoded) and the Content-* fields,
    which relay.mail.anonymise filters like any part's."""
    kept: list[bytes] = []
    content: list[tuple[str, bytes]] = []
    for name, field in F.fields(header_bytes):
        if name.startswith("content-"):
            content.append((name, field))
        elif name == "subject":
            kept.append(field if field.isascii() else F.unstructured("Subject", F.value(field)))
        elif name in KEEP:
            # Rebuilt without comments (free text); garbage is dropped and ours replaces it.
            built = F.structured(name, F.value(field))
            if built is not None:
                kept.append(built)
    return kept, content


def mailbox(name: str, address: str) -> str:
    """``"Name" <address>``: always quoted when ASCII, RFC 2047-encoded otherwise."""
    if not name:
        return f"<{address}>"
    if name.isascii():
        escaped = name.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}" <{address}>'
    return formataddr((name, address), charset="utf-8")


def anonymiser(rw: Rewrite) -> Anonymiser:
    domain = rw.from_alias.rpartition("@")[2].lower()
    parties = Parties(
        sender_addresses=frozenset(a.strip().lower() for a in rw.sender_addresses if a),
        sender_mailbox=mailbox(rw.from_name, rw.from_alias),
        recipient_address=rw.to_address,
        recipient_mailbox=mailbox(rw.to_name, rw.to_address),
        relay_domain=domain,
        relay_host=rw.relay_host,
        marketplace=rw.marketplace,
    )
    return Anonymiser(parties, IdMinter(rw.message_id, domain))


def rewrite_message(message: bytes, rw: Rewrite) -> bytes:
    header_bytes, body = split_message(message)
    kept, content = _kept(header_bytes)
    content_fields, body = anonymiser(rw).top(content, body)
    kept_names = {k.split(b":", 1)[0].strip().lower() for k in kept}
    out = [
        _header(
            "Received",
            f"by {rw.relay_host} (relay) id {rw.message_id.split('@')[0][:12]}; "
            f"{format_datetime(rw.now)}",
        ),
        _header(HOPS_HEADER, str(rw.hops)),
        _header("From", mailbox(rw.from_name, rw.from_alias)),
        _header("Reply-To", mailbox(rw.from_name, rw.from_alias)),
        _header("To", mailbox(rw.to_name, rw.to_address)),
        _header("Message-ID", f"<{rw.message_id}>"),
    ]
    if rw.in_reply_to:
        out.append(_header("In-Reply-To", " ".join(f"<{i}>" for i in rw.in_reply_to)))
    if rw.references:
        out.append(_header("References", "\r\n ".join(f"<{i}>" for i in rw.references)))
    if b"date" not in kept_names:
        out.append(_header("Date", format_datetime(rw.now)))
    if b"mime-version" not in kept_names and content_fields:
        out.append(_header("MIME-Version", "1.0"))
    return b"".join(out) + b"".join(kept) + b"".join(content_fields) + b"\r\n" + body


def map_thread_ids(ids: Iterable[str], lookup: Callable[[str], str | None]) -> tuple[str, ...]:
    """Translate ids the recipient can know; drop the rest (they may name a domain)."""
    out: list[str] = []
    for original in ids:
        mapped = lookup(original)
        if mapped and mapped not in out:
            out.append(mapped)
    return tuple(out)
