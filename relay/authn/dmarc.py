"""DMARC (RFC 7489) record discovery and identifier alignment.

The organisational domain comes from the Public Suffix List shipped inside the
``publicsuffixlist`` package (no network access). We use DMARC for the alignment rules and
to record the published policy; the accept/refuse decision never relaxes because a domain
publishes ``p=none`` (see ``relay.authn.judge_sender``).
"""

from __future__ import annotations

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


def parse_record(text: str, *, subdomain: bool) -> DmarcRecord | None:
    """Parse a ``v=DMARC1`` record; None when it is not one or ``p=`` is unusable."""
    tags: dict[str, str] = {}
    for part in text.split(";"):
        if "=" in part:
            k, _, v = part.partition("=")
            tags.setdefault(k.strip().lower(), v.strip())
    if tags.get("v") != "DMARC1":
        return None
    policy = tags.get("p", "").lower()
    if policy not in ("none", "quarantine", "reject"):
        return None
    if subdomain and tags.get("sp", "").lower() in ("none", "quarantine", "reject"):
        policy = tags["sp"].lower()
    return DmarcRecord(
        policy=policy,
        strict_spf=tags.get("aspf", "r").lower() == "s",
        strict_dkim=tags.get("adkim", "r").lower() == "s",
    )


async def fetch(
    from_domain: str, resolver: dns.asyncresolver.Resolver, deadline: Deadline
) -> DmarcRecord | None:
    """Look up ``_dmarc.<From domain>``, then the organisational domain (RFC 7489 §6.6.3).

    Raises DnsTempError on temporary DNS failure.
    """
    candidates = [from_domain]
    org = org_domain(from_domain)
    if org != from_domain:
        candidates.append(org)
    for i, name in enumerate(candidates):
        records, _ = await lookup(resolver, f"_dmarc.{name}", "TXT", deadline)
        texts = [t for t in txt_strings(records) if t.replace(" ", "").startswith("v=DMARC1")]
        if len(texts) == 1:
            rec = parse_record(texts[0], subdomain=i > 0)
            if rec is not None:
                return rec
    return None
