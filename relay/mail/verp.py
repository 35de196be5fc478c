"""Signed return paths: ``bounce+TOKEN.MAC@relay-domain``.

Every delivery leaves with its own return path, so a bounce names the delivery it is
about without parsing the bounce's text; the HMAC means nobody can forge one to make us
mark a delivery failed or send a notice to a third party.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

_TOKEN = re.compile(r"^[a-z0-9]{16,32}$")


def new_token() -> str:
    return secrets.token_hex(10)


def _mac(key: bytes, token: str) -> str:
    return hmac.new(key, token.encode(), hashlib.sha256).hexdigest()[:16]


def return_path(token: str, *, key: bytes, domain: str, prefix: str = "bounce") -> str:
    return f"{prefix}+{token}.{_mac(key, token)}@{domain}"


def parse_return_path(local: str, *, key: bytes, prefix: str = "bounce") -> str | None:
    """The delivery token if the local part carries a valid signature, else None.

    Case-insensitive: some MTAs change the case of the return path they bounce to, and
    the token and MAC are lower-case hex anyway.
    """
    local, prefix = local.lower(), prefix.lower()
    if not local.startswith(prefix + "+"):
        return None
    token, _, mac = local[len(prefix) + 1 :].rpartition(".")
    if not _TOKEN.match(token) or len(mac) != 16:
        return None
    return token if hmac.compare_digest(mac, _mac(key, token)) else None
