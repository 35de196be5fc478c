"""DMARC (RFC 7489) record discovery and identifier alignment.

The organisational domain comes from the Public Suffix List shipped inside the
``publicsuffixlist`` package (no network access). We use DMARC for the alignment rules and
to record the published policy; the accept/refuse decision never relaxes because a domain
publishes ``p=none`` (see ``relay.authn.judge_sender``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import dns.asyncresolver
from publicsuffixlist import PublicSuffixList

from relay.authn.dnsutil import Deadline, lookup, txt_strings


@lru_cache(maxsize=1)
def _psl() -> PublicSuffixList:
    return PublicSuffixList()


def org_domain(domain: str) -> str:
    """The organisational domain (RFC 7489 §3.2), e.g. mail.shop.co.uk -> shop.co.uk."""
    domain = domain.lower().rstrip(".")
    return _psl().privatesuffix(domain) or domain


def aligned(a: str, b: str, strict: bool = False) -> bool:
    """Identifier alignment: exact when strict, same organisational domain when relaxed."""
    a, b = a.lower().rstrip("."), b.lower().rstrip(".")
    if not a or not b:
        return False
    return a == b if strict else org_domain(a) == org_domain(b)


@dataclass(frozen=True)
class DmarcRecord:
    """The parts of a DMARC record we use."""

    policy: str  # none | quarantine | reject
    strict_spf: bool
    strict_dkim: bool


_VERSION = re.compile(r"[ \t]*[vV][ \t]*=[ \t]*DMARC1[ \t]*(?:;|$)")
_POLICIES = ("none", "quarantine", "reject")


def is_dmarc(text: str) -> bool:
    """Does the record start with the ``v=DMARC1`` tag (RFC 7489 §6.4, §6.6.3 step 2)?"""
    return _VERSION.match(text) is not None


def _valid_uri_list(value: str) -> bool:
    """At least one syntactically valid ``dmarc-uri`` (RFC 7489 §6.4) in a rua= list."""
    for uri in value.split(","):
        uri = uri.strip().split("!", 1)[0]
        scheme, colon, rest = uri.partition(":")
        if colon and rest and re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", scheme):
            return True
    return False


def parse_record(text: str, *, subdomain: bool) -> DmarcRecord | None:
    """Parse a ``v=DMARC1`` record; None when it is not one or its policy is unusable.

    RFC 7489 §6.6.3 step 6: an invalid ``p=`` or ``sp=`` reads as ``p=none`` when the
    record names a valid ``rua=`` address, else as no DMARC record at all.
    """
    if not is_dmarc(text):
        return None
    tags: dict[str, str] = {}
    for part in text.split(";"):
        if "=" in part:
            k, _, v = part.partition("=")
            tags.setdefault(k.strip().lower(), v.strip())
    policy = tags.get("p", "").lower()
    sub = tags.get("sp", policy).lower()
    if policy not in _POLICIES or sub not in _POLICIES:
        if not _valid_uri_list(tags.get("rua", "")):
            return None
        policy = sub = "none"
    return DmarcRecord(
        policy=sub if subdomain else policy,
        strict_spf=tags.get("aspf", "r").lower() == "s",
        strict_dkim=tags.get("adkim", "r").lower() == "s",
    )


async def fetch(
    from_domain: str, resolver: dns.asyncresolver.Resolver, deadline: Deadline
) -> DmarcRecord | None:
    """Policy discovery (RFC 7489 §6.6.3): ``_dmarc.<From domain>``, and only when that
    holds no DMARC record, ``_dmarc.<organisational domain>``.

    Only TXT records starting with ``v=DMARC1`` count; several of them mean no policy (not
    a fall back to the organisational domain), and so does one with an unusable policy.
    Raises DnsTempError on temporary DNS failure.
    """
    from_domain = from_domain.lower().rstrip(".")
    org = org_domain(from_domain)
    for name in dict.fromkeys((from_domain, org)):
        records, _ = await lookup(resolver, f"_dmarc.{name}", "TXT", deadline)
        texts = [t for t in txt_strings(records) if is_dmarc(t)]
        if not texts:
            continue
        if len(texts) > 1:
            return None
        return parse_record(texts[0], subdomain=name != from_domain)
    return None
