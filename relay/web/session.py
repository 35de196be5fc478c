"""Login sessions for the Message Center: a signed cookie, never the ops token itself.

The cookie is an itsdangerous timestamped signature over a random nonce, keyed by a key
derived from the ops token that logged in. Nothing is stored server-side, so any number
of API processes sharing the settings accept each other's sessions, and removing a token
from ``api.ops_tokens`` ends every session it opened. The cookie cannot be turned back
into the token (the derivation is one-way), so a stolen cookie is worth at most
``LIFETIME``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable
from urllib.parse import urlsplit

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner
from starlette.requests import Request
from starlette.responses import Response

COOKIE = "relay_ui"
LIFETIME = 8 * 3600  # seconds; an ops shift, then log in again
_LABEL = b"relay.web.session.v2"


def _key(token: str) -> bytes:
    return hmac.new(token.encode(), _LABEL, hashlib.sha256).digest()


class _Signer(TimestampSigner):
    """A signer whose clock can be set, so expiry is testable without sleeping."""

    now: float | None = None

    def get_timestamp(self) -> int:
        return int(self.now if self.now is not None else time.time())


def _signer(token: str, now: float | None = None) -> _Signer:
    signer = _Signer(_key(token), salt="relay.web.session", digest_method=hashlib.sha256)
    signer.now = now
    return signer


class Sessions:
    """Issues and checks session values for the configured ops tokens."""

    def __init__(self, ops_tokens: Iterable[str]) -> None:
        self._tokens = tuple(t.encode() for t in ops_tokens)
        self._raw = tuple(ops_tokens)

    def token_ok(self, presented: str) -> bool:
        """Constant time per token, and every token compared: no timing hint of which."""
        given = presented.encode()
        found = False
        for token in self._tokens:
            found |= hmac.compare_digest(given, token)
        return found and bool(presented)

    def issue(self, token: str, now: float | None = None) -> str:
        return _signer(token, now).sign(secrets.token_hex(12)).decode()

    def valid(self, value: str | None, now: float | None = None) -> bool:
        if not value:
            return False
        ok = False
        for token in self._raw:  # every key tried: no timing hint of which token
            try:
                _signer(token, now).unsign(value, max_age=LIFETIME)
                ok = True
            except (SignatureExpired, BadSignature):
                pass
        return ok


def set_cookie(response: Response, request: Request, value: str) -> None:
    """HttpOnly (no script reads it), SameSite=Strict (no cross-site request carries it),
    Secure whenever the page itself came over TLS."""
    response.set_cookie(
        COOKIE,
        value,
        max_age=LIFETIME,
        path="/ui",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def clear_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(
        COOKIE, path="/ui", httponly=True, samesite="strict",
        secure=request.url.scheme == "https",
    )  # fmt: skip


def same_site(request: Request) -> bool:
    """Is this POST from one of our own pages? (login CSRF: an attacker's page must not
    log a victim's browser in, nor out.)

    Browsers send ``Origin`` on every POST; ``Sec-Fetch-Site`` and ``Referer`` are the
    fall-backs. A request carrying none of them is refused: only a non-browser client
    omits them all, and it has the bearer API.
    """
    own = f"{request.url.scheme}://{request.url.netloc}".lower()
    origin = request.headers.get("origin")
    if origin is not None:
        return origin.lower() == own
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site in ("same-origin", "none")
    referer = request.headers.get("referer")
    if referer:
        parts = urlsplit(referer)
        return f"{parts.scheme}://{parts.netloc}".lower() == own
    return False


def safe_next(target: str | None) -> str:
    """Where to go after login: only a path inside the Message Center (no open redirect)."""
    if (
        target
        and target.startswith("/ui/")
        and not target.startswith("//")
        and "\\" not in target
        and not any(c in target for c in "\r\n\t")
    ):
        return target
    return "/ui/"
