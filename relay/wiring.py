"""Plugging sender authentication and DKIM signing into the pipeline and the worker.

Kept apart from relay.app so the pipeline stays testable without DNS, and so the
choice of ``auth.mode`` is made in one place.
"""

from __future__ import annotations

from typing import Any

from relay.authn import authenticate, judge_sender
from relay.core.replies import Reply
from relay.delivery.route import make_resolver
from relay.dkim import DkimKeyError, load_signer
from relay.mail.parse import Inbound
from relay.pipeline import Authenticator, SenderCheck, SessionInfo, registered_sender
from relay.settings import Settings, SettingsError
from relay.store.resolve import Resolution


def make_authenticator(settings: Settings) -> Authenticator:
    """Registered address first (a stranger is a stranger whatever DNS says), then
    SPF/DKIM/DMARC evidence judged per recipient (per-party relaxations differ)."""
    if settings.auth.mode == "off":
        return registered_sender
    resolver = make_resolver(settings.dns)
    budget = settings.dns.timeout.total_seconds()

    async def check(
        inbound: Inbound, info: SessionInfo, res: Resolution, sender: str | None
    ) -> SenderCheck:
        base = await registered_sender(inbound, info, res, sender)
        if base.refusal is not None:  # no DNS work for strangers
            return base
        results = await authenticate(
            inbound.raw,
            mail_from=info.mail_from,
            helo=info.helo,
            client_ip=info.client_ip,
            resolver=resolver,
            timeout=budget,
            recipients=[res.alias],
            message=inbound,  # the intake's reading: no second parse of From, To, Cc
        )
        evidence = results.as_dict()
        decision = judge_sender(
            results,
            message=inbound,
            registered=set(res.sender_emails),
            allow_spf_only=res.sender_allow_spf_only,
            mode=settings.auth.mode,
        )
        evidence["decision"] = f"{decision.code} {decision.enhanced} {decision.reason}"
        if decision.ok:
            return SenderCheck(None, evidence)
        return SenderCheck(Reply(decision.code, decision.enhanced, decision.reason), evidence)

    return check


def auth_parts(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for relay.app.Parts (and relay.service.Relay): authenticator
    and DKIM signer."""
    try:
        signer = load_signer(settings)
    except DkimKeyError as err:
        raise SettingsError(str(err)) from None
    return {
        "authenticator": make_authenticator(settings),
        "signer": signer.sign if signer is not None else None,
    }
