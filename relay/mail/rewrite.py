"""The anonymising header rewrite: an allowlist, never a blocklist.

Only headers that cannot name the sender survive (Subject, Date, MIME-Version, Content-*,
Auto-Submitted); From, To, Reply-To and Message-ID are set by us; In-Reply-To and
References are translated through the message-id table. Everything else, Received lines,
DKIM signatures, Authentication-Results, X-Mailer, Return-Path, Cc, is dropped, because
every one of them has been seen to carry a real address.
"""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime, formataddr

from relay.mail.parse import HOPS_HEADER, split_message

KEEP = ("subject", "date", "mime-version", "auto-submitted")
KEEP_PREFIX = ("content-",)
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


def display_name(name: str, fallback: str, marketplace: str) -> str:
    return f"{name or fallback} via {marketplace}"


def _kept(header_bytes: bytes) -> Iterable[bytes]:
    """Yield kept header fields verbatim (with folding), in their original order."""
    field: list[bytes] = []
    keep = False
    for line in header_bytes.split(b"\r\n"):
        if not line:
            continue
        if line[:1] in (b" ", b"\t"):
            if keep:
                field.append(line)
            continue
        if keep and field:
            yield b"\r\n".join(field) + b"\r\n"
        name = line.split(b":", 1)[0].strip().lower().decode("ascii", "replace")
        keep = b":" in line and (name in KEEP or name.startswith(KEEP_PREFIX))
        field = [line]
    if keep and field:
        yield b"\r\n".join(field) + b"\r\n"


def _header(name: str, value: str) -> bytes:
    """Values are ASCII and bounded by construction (names are cleaned at provisioning)."""
    return f"{name}: {value}".encode("ascii").replace(b"\n", b"\r\n") + b"\r\n"


def mailbox(name: str, address: str) -> str:
    """``"Name" <address>``: always quoted when ASCII, RFC 2047-encoded otherwise."""
    if not name:
        return f"<{address}>"
    if name.isascii():
        escaped = name.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}" <{address}>'
    return formataddr((name, address), charset="utf-8")


def rewrite_message(message: bytes, rw: Rewrite) -> bytes:
    header_bytes, body = split_message(message)
    kept = list(_kept(header_bytes))
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
        out.append(_header("References", " ".join(f"<{i}>" for i in rw.references)))
    if b"date" not in kept_names:
        out.append(_header("Date", format_datetime(rw.now)))
    if b"mime-version" not in kept_names and any(n.startswith(b"content-") for n in kept_names):
        out.append(_header("MIME-Version", "1.0"))
    return b"".join(out) + b"".join(kept) + b"\r\n" + body


def map_thread_ids(ids: Iterable[str], lookup: Callable[[str], str | None]) -> tuple[str, ...]:
    """Translate ids the recipient can know; drop the rest (they may name a domain)."""
    out: list[str] = []
    for original in ids:
        mapped = lookup(original)
        if mapped and mapped not in out:
            out.append(mapped)
    return tuple(out)
