"""A small mail world for the authentication tests: keys, messages, the checker.

The "seller's mail server" signs with dkimpy directly, as a foreign MTA would.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import dkim

from relay.authn import AuthResults, SenderDecision, authenticate, header_values, judge_sender
from relay.dkim import generate_key
from tests.support.dnsserver import DNSServer

SELLER = "seller@shop.example"
ALIAS = "b-7f3a9c2e41d05b8a6e19@relay.example"
SELLER_IP = "192.0.2.10"
ATTACKER_IP = "203.0.113.66"


def key(name: str, algorithm: str = "rsa") -> tuple[bytes, str]:
    """Keys are generated once per test run (RSA generation costs ~0.1 s)."""
    return _key(name, algorithm)


@functools.cache
def _key(name: str, algorithm: str) -> tuple[bytes, str]:
    return generate_key(algorithm)


def message(
    from_: str = SELLER,
    to: str = ALIAS,
    body: str = "Hello, your parcel left today.\r\n",
    extra: str = "",
) -> bytes:
    return (
        f"From: {from_}\r\nTo: {to}\r\nSubject: Order 123-4567890-1234567\r\n"
        f"Date: Fri, 27 Nov 2026 09:00:00 +0000\r\nMessage-ID: <m1@shop.example>\r\n"
        f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n{extra}\r\n{body}"
    ).encode()


def sign(
    raw: bytes,
    domain: str,
    selector: str = "sel",
    keyname: str | None = None,
    algorithm: str = "rsa",
    length: bool = False,
    to_signed: bool = True,
    sha1: bool = False,
) -> bytes:
    pem, _ = key(keyname or domain, algorithm)
    if algorithm == "ed25519":
        from relay.dkim import DkimSigner

        return DkimSigner(domain, selector, pem, "ed25519-sha256").sign(raw)
    sig = dkim.sign(
        raw,
        selector.encode(),
        domain.encode(),
        pem,
        length=length,
        signature_algorithm=b"rsa-sha1" if sha1 else b"rsa-sha256",
        canonicalize=(b"relaxed", b"relaxed"),
        include_headers=[b"from", b"subject", b"date", b"message-id"] + [b"to"] * to_signed,
    )
    return sig + raw


@dataclass
class World:
    dns: DNSServer

    async def check(
        self,
        raw: bytes,
        *,
        mail_from: str = SELLER,
        ip: str = SELLER_IP,
        helo: str = "mx.shop.example",
        registered: frozenset[str] = frozenset({SELLER}),
        allow_spf_only: bool = False,
        mode: str = "enforce",
        budget: float = 3.0,
        recipients: tuple[str, ...] = (ALIAS,),
    ) -> tuple[AuthResults, SenderDecision]:
        results = await authenticate(
            raw,
            mail_from=mail_from,
            helo=helo,
            client_ip=ip,
            resolver=self.dns.resolver(timeout=0.5),
            timeout=budget,
            recipients=recipients,
        )
        decision = judge_sender(
            results,
            from_header_values=header_values(raw),
            registered=set(registered),
            allow_spf_only=allow_spf_only,
            mode=mode,
        )
        return results, decision
