"""The participant decision: is this message really from the party it claims?

Semantics (stricter than DMARC on purpose: a seller provider's ``p=none`` or ``~all`` must
not open a buyer's alias):

1. The raw From values must be exactly one field with exactly one plain mailbox
   (``relay.authn.fromaddr``), else ``550 5.7.1``.
2. That mailbox must equal one of ``registered`` as providers compare addresses (local
   part NFC and case-insensitive, domain IDNA- and case-normalised:
   ``relay.authn.fromaddr.same_address``), else ``550 5.7.1``. Look-alike domains simply
   do not match; mixed-script and invisible characters never parse.
3. It must be authenticated for its domain:
   * ``allow_spf_only=False`` (default for parties): an aligned DKIM pass is required
     (a signature whose ``d=`` aligns with the From domain, covers the whole body and signs
     From). SPF alone is weak on shared sending infrastructure.
   * ``allow_spf_only=True`` (per-party relaxation, e.g. a seller domain without DKIM): an
     aligned DKIM pass *or* an SPF pass for MAIL FROM (HELO for the null sender) whose
     domain aligns with the From domain.
   The published DMARC ``p=`` is recorded but never relaxes this; strict ``adkim``/``aspf``
   do tighten alignment.
4. If that fails and a relevant lookup failed temporarily: ``451 4.4.3`` (never 5xx for
   DNS trouble). Otherwise ``550`` with an RFC 7372 code: 5.7.20 no passing DKIM, 5.7.21
   no acceptable DKIM (``l=`` shorter than the body, or a replay: see
   ``authenticate(recipients=...)``), 5.7.22 DKIM passes but not for the
   author's domain, 5.7.23 SPF failed, 5.7.24 SPF record error, 5.7.26 several failed.

``mode="off"`` skips everything (ok); ``mode="report"`` computes the decision and returns
it with ``ok=True`` so the caller can archive what enforcement would have done.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from relay.authn.fromaddr import FromError, same_address, single_from
from relay.authn.replay import REPLAYED, UNSIGNED_TO

if TYPE_CHECKING:
    from relay.authn import AuthResults, SenderDecision
    from relay.core.values import Message

TEMP = (451, "4.4.3", "temporary DNS failure while authenticating the sender; try again later")
NOT_PARTICIPANT = (550, "5.7.1", "the From address is not a participant in this conversation")


def _decide(
    results: AuthResults,
    from_header_values: list[str] | None,
    registered: set[str],
    allow_spf_only: bool,
    message: Message | None,
) -> tuple[int, str, str]:
    if message is not None:  # the intake's strict From, read once
        if not message.from_mailbox:
            return 550, "5.7.1", message.from_error
        mailbox = message.from_mailbox
    else:
        try:
            mailbox = single_from(from_header_values or [])
        except FromError as err:
            return 550, "5.7.1", str(err)
    if not any(same_address(mailbox, r) for r in registered):
        return NOT_PARTICIPANT
    if mailbox.rpartition("@")[2] != results.from_domain:
        return 550, "5.7.1", "the From header does not match the authenticated message"
    passed = results.passed_by or ""
    if passed.startswith("dkim:") or (allow_spf_only and passed.startswith("spf:")):
        return 250, "2.0.0", "sender authenticated"

    dkim_temp = any(d.result == "temperror" for d in results.dkim)
    spf_temp = allow_spf_only and results.spf == "temperror"
    if dkim_temp or spf_temp or results.dmarc == "temperror":
        return TEMP

    sigs = results.dkim
    if any(d.body_truncated or d.reason in (REPLAYED, UNSIGNED_TO) for d in sigs):
        dkim_code = ("5.7.21", "no acceptable DKIM signature (partial body or replayed)")
    elif any(d.result == "pass" for d in sigs):
        dkim_code = ("5.7.22", "no DKIM signature aligned with the author's domain")
    elif sigs:
        dkim_code = ("5.7.20", "no passing DKIM signature found")
    else:
        dkim_code = ("5.7.20", "a DKIM signature from the author's domain is required")
    if not allow_spf_only:
        return 550, *dkim_code
    if sigs:
        return 550, "5.7.26", "multiple authentication checks failed"
    if results.spf in ("fail", "softfail"):
        return 550, "5.7.23", "SPF validation failed"
    if results.spf == "permerror":
        return 550, "5.7.24", "SPF validation error"
    return 550, "5.7.26", "multiple authentication checks failed"


def judge_sender(
    results: AuthResults,
    *,
    from_header_values: list[str] | None = None,
    registered: set[str],
    allow_spf_only: bool,
    mode: str,
    message: Message | None = None,
) -> SenderDecision:
    """Decide whether the message comes from a participant; see the module docstring.

    ``from_header_values`` must be the raw, undecoded values (``relay.authn.header_values``),
    not ``EmailMessage.get_all("From")``, which decodes encoded-words. With ``message``
    (the intake's relay.core.values.Message) its strict From reading is used instead.
    """
    from relay.authn import SenderDecision

    if mode == "off":
        return SenderDecision(True, 250, "2.0.0", "sender authentication is off")
    code, enhanced, reason = _decide(
        results, from_header_values, registered, allow_spf_only, message
    )
    if code == 250:
        return SenderDecision(True, code, enhanced, reason)
    if mode == "report":
        return SenderDecision(True, code, enhanced, f"report only: {reason}")
    return SenderDecision(False, code, enhanced, reason)
