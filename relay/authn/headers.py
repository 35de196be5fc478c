"""Header fields that must never travel with a delivered copy.

Authentication-Results, ARC and DKIM headers name the sender's domain (``header.d=``,
``smtp.mailfrom=``) and would undo the anonymity. The core rewrites with an allowlist
anyway; this list is the explicit deny side, for tests and defence in depth.
"""

from __future__ import annotations

import re

STRIP_HEADERS: frozenset[str] = frozenset(
    {
        "authentication-results",
        "arc-authentication-results",
        "arc-message-signature",
        "arc-seal",
        "received-spf",
        "dkim-signature",
        "domainkey-signature",
        "x-google-dkim-signature",
        "x-ms-exchange-authentication-results",
        "x-original-authentication-results",
        "dkim-filter",
    }
)
_NAME = re.compile(rb"^([!-9;-~]+)[ \t]*:")


def is_stripped(name: str) -> bool:
    """True when a header of this name must be dropped (``ARC-*`` by prefix)."""
    n = name.strip().lower()
    return n in STRIP_HEADERS or n.startswith("arc-")


def strip_auth_headers(raw: bytes) -> bytes:
    """Remove every STRIP_HEADERS field (with its folded lines) from the header block."""
    sep = b"\r\n" if b"\r\n" in raw else b"\n"
    head, blank, body = raw.partition(sep + sep)
    out: list[bytes] = []
    dropping = False
    for line in head.split(sep):
        if line[:1] in (b" ", b"\t"):
            if not dropping:
                out.append(line)
            continue
        m = _NAME.match(line)
        dropping = bool(m) and is_stripped(m.group(1).decode("ascii", "replace"))
        if not dropping:
            out.append(line)
    return sep.join(out) + blank + body
