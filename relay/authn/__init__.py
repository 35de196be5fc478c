"""Inbound sender authentication: SPF, DKIM and DMARC, and the participant decision.

``authenticate()`` gathers the evidence (all DNS asynchronous, under one time budget);
``judge_sender()`` turns it into an SMTP answer. They are separate so the evidence can be
archived even when the decision is "refuse", and so ``auth.mode = "report"`` can record
what enforcement would have done.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import dns.asyncresolver

from relay.authn import dmarc as _dmarc
from relay.authn.dkimverify import DkimResult, verify_all
from relay.authn.dnsutil import Deadline, DnsTempError
from relay.authn.fromaddr import FromError, header_values, single_from
from relay.authn.replay import replay_check
from relay.authn.spf import check_host, is_domain

if TYPE_CHECKING:
    from relay.core.values import Message

__all__ = [
    "AuthResults",
    "DkimResult",
    "SenderDecision",
    "authenticate",
    "header_values",
    "judge_sender",
]


@dataclass(frozen=True)
class AuthResults:
    """The evidence about one message. Archive ``as_dict()``; never put it in a header.

    ``spf`` is for the MAIL FROM identity (HELO when MAIL FROM is null), ``spf_domain`` its
    domain. ``aligned_pass`` means an aligned DKIM pass or an aligned SPF pass (relaxed
    alignment unless the domain's DMARC record asks for strict). ``passed_by`` prefers DKIM.
    ``temperror`` is set when any check hit a temporary DNS failure.
    """

    spf: str
    spf_domain: str
    helo_spf: str
    dkim: tuple[DkimResult, ...]
    dmarc: str
    dmarc_policy: str
    from_domain: str
    aligned_pass: bool
    passed_by: str | None
    temperror: bool

    def as_dict(self) -> dict[str, object]:
        return {
            "spf": self.spf,
            "spf_domain": self.spf_domain,
            "helo_spf": self.helo_spf,
            "dkim": [d.as_dict() for d in self.dkim],
            "dmarc": self.dmarc,
            "dmarc_policy": self.dmarc_policy,
            "from_domain": self.from_domain,
            "aligned_pass": self.aligned_pass,
            "passed_by": self.passed_by,
            "temperror": self.temperror,
        }


@dataclass(frozen=True)
class SenderDecision:
    """The SMTP answer. ``reason`` is plain text that never contains an address.

    When ``ok`` is True the message goes on. In report mode ``ok`` is always True and
    ``code``/``enhanced``/``reason`` say what enforce mode would have answered.
    """

    ok: bool
    code: int
    enhanced: str
    reason: str


T = TypeVar("T")
F = TypeVar("F")


async def _guard(coro: Awaitable[T], limit: float, fallback: F) -> T | F:
    try:
        return await asyncio.wait_for(coro, limit)
    except (TimeoutError, DnsTempError):
        return fallback


async def authenticate(
    raw: bytes,
    *,
    mail_from: str,
    helo: str,
    client_ip: str,
    resolver: dns.asyncresolver.Resolver,
    timeout: float = 5.0,
    recipients: Collection[str] = (),
    message: Message | None = None,
) -> AuthResults:
    """Check SPF (MAIL FROM and HELO), every DKIM signature and DMARC for ``raw``.

    Never raises for DNS trouble: temporary failures become ``temperror`` results.

    ``recipients`` (the envelope RCPT TO addresses, i.e. our aliases) turns on the replay
    check (``relay.authn.replay``): a DKIM pass only counts when To/Cc name one of the
    recipients, and, if the signature does not cover To/Cc, only with an aligned SPF pass.
    Downgraded signatures read ``fail`` with reason REPLAYED or UNSIGNED_TO. This stops a
    stranger from replaying a genuinely signed message of the seller, written to someone
    else, into a buyer alias.

    ``message``: the intake's reading of ``raw`` (relay.core.values.Message); its strict
    From and its To/Cc values are used instead of reading the header section again.
    """
    deadline = Deadline.after(timeout)
    helo_domain, spf_domain, sender = _identities(mail_from, helo)
    from_domain = _from_domain(raw, message)

    async def spf_for(domain: str, who: str) -> str:
        if not is_domain(domain):
            return "none"
        return await check_host(
            client_ip, domain, who, helo=helo_domain, resolver=resolver, deadline=deadline
        )

    async def dmarc_record() -> _dmarc.DmarcRecord | str | None:
        if not from_domain:
            return None
        try:
            return await _dmarc.fetch(from_domain, resolver, deadline)
        except DnsTempError:
            return "temperror"

    limit = timeout + 1.0
    spf, helo_spf, dkim_results, record = await asyncio.gather(
        _guard(spf_for(spf_domain, sender), limit, "temperror"),
        _guard(spf_for(helo_domain, f"postmaster@{helo_domain}"), limit, "temperror"),
        _guard(verify_all(raw, resolver, deadline), limit, None),
        _guard(dmarc_record(), limit, "temperror"),
    )
    dkim: tuple[DkimResult, ...] = (
        dkim_results
        if dkim_results is not None
        else (DkimResult("", "", "temperror", "verification timed out"),)
    )
    rec = record if isinstance(record, _dmarc.DmarcRecord) else None
    spf_ok = spf == "pass" and _dmarc.aligned(spf_domain, from_domain, bool(rec and rec.strict_spf))
    if recipients:
        dkim = replay_check(raw, dkim, recipients, spf_ok, message=message)
    passed_by = _passed_by(dkim, from_domain, bool(rec and rec.strict_dkim), spf_ok, spf_domain)
    dmarc_result = _dmarc_result(from_domain, record, rec, passed_by)
    return AuthResults(
        spf=spf,
        spf_domain=spf_domain,
        helo_spf=helo_spf,
        dkim=dkim,
        dmarc=dmarc_result,
        dmarc_policy=rec.policy if rec else "",
        from_domain=from_domain,
        aligned_pass=passed_by is not None,
        passed_by=passed_by,
        temperror=spf == "temperror"
        or dmarc_result == "temperror"
        or any(d.result == "temperror" for d in dkim),
    )


def _identities(mail_from: str, helo: str) -> tuple[str, str, str]:
    """(HELO domain, SPF domain, SPF sender): the null sender is checked as
    postmaster@HELO (RFC 7208 §2.4)."""
    helo_domain = helo.strip().rstrip(".").lower()
    mail_from = mail_from.strip().strip("<>")
    if "@" in mail_from:
        return helo_domain, mail_from.rpartition("@")[2].rstrip(".").lower(), mail_from
    return helo_domain, helo_domain, f"postmaster@{helo_domain}"


def _from_domain(raw: bytes, message: Message | None) -> str:
    """The domain of the one strict From ('' when there is none: DMARC's permerror)."""
    if message is not None:
        return message.from_domain
    try:
        return single_from(header_values(raw)).rpartition("@")[2]
    except FromError:
        return ""


def _passed_by(
    dkim: tuple[DkimResult, ...], from_domain: str, strict_dkim: bool, spf_ok: bool,
    spf_domain: str,
) -> str | None:  # fmt: skip
    """What made DMARC pass: an aligned DKIM signature first, else aligned SPF."""
    for d in dkim:
        if d.result == "pass" and _dmarc.aligned(d.domain, from_domain, strict_dkim):
            return f"dkim:{d.domain}"
    return f"spf:{spf_domain}" if spf_ok else None


def _dmarc_result(
    from_domain: str, record: object, rec: _dmarc.DmarcRecord | None, passed_by: str | None
) -> str:
    if not from_domain:
        return "permerror"
    if record == "temperror":
        return "temperror"
    if rec is None:
        return "none"
    return "pass" if passed_by else "fail"


from relay.authn.judge import judge_sender  # noqa: E402
