"""The decision for a whole transaction, as the commit entries the store writes.

Pure: the chain's outcome for each recipient in, one relay.store.commit.Entry per
recipient out (its archive record, and the delivery when there is one). SMTP has one
reply for DATA, so if any recipient refuses the message none of them receives it: the
others are archived as refused "because another recipient refused it" (a partial
delivery would be a silent one).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from relay.core.outcomes import ReasonCode, Verdict
from relay.core.replies import Reply
from relay.core.values import Message, SessionInfo
from relay.intake.chain import Context, Refusal
from relay.intake.read import search_text
from relay.mail import rewrite as rw
from relay.mail.autoreply import is_automatic
from relay.mail.verp import new_token, return_path
from relay.ratelimits import RateLimits, wants_no_reply
from relay.store.archive import Record, bounded
from relay.store.commit import Entry, Outgoing
from relay.store.resolve import Resolution

# The code of a recipient the chain let through, by the policy's verdict.
_ACCEPTED = {
    Verdict.DELIVER: ReasonCode.NONE,
    Verdict.REDACT: ReasonCode.NONE,
    Verdict.HOLD: ReasonCode.HELD,
}


@dataclass(frozen=True)
class Terms:
    """What the decision needs besides the chain's outcome (from the settings)."""

    domain: str
    verp_key: bytes
    bounce_prefix: str
    refused_keep: int  # bytes of a message archived when no sender was proven
    limits: RateLimits


def refusal(outcomes: list[Context | Refusal]) -> Reply | None:
    """The transaction's reply when a recipient refused it (the first such), else None."""
    return next((o.reply for o in outcomes if isinstance(o, Refusal)), None)


def entries(
    outcomes: list[Context | Refusal], message: Message, info: SessionInfo, now: datetime,
    terms: Terms,
) -> list[Entry]:
    """One entry per recipient, each with the limits it charges."""
    refused = refusal(outcomes) is not None
    search = search_text(message)
    return [_entry(o, message, info, now, terms, search, refused=refused) for o in outcomes]


def _entry(
    outcome: Context | Refusal, message: Message, info: SessionInfo, now: datetime,
    terms: Terms, search: tuple[str, bool], *, refused: bool,
) -> Entry:
    """One recipient's entry: what the chain decided for it (or, when another recipient
    refused, "refused" in its place), the limits it charges, and its delivery."""
    ctx = outcome.ctx if isinstance(outcome, Refusal) else outcome
    res = ctx.rcpt
    proven = ctx.check is not None and ctx.check.refusal is None  # archived in full
    reply = outcome.reply if isinstance(outcome, Refusal) else None
    delivered = None if refused else ctx.delivered
    findings = outcome.findings if isinstance(outcome, Refusal) else ctx.findings
    if isinstance(outcome, Refusal):
        verdict, code, reason = outcome.verdict, outcome.code, outcome.reason
    else:
        assert ctx.verdict is not None
        verdict = Verdict(ctx.verdict.action)
        code = _ACCEPTED[verdict]
        reason = ctx.verdict.reason if verdict is Verdict.HOLD else ""
        if refused:
            verdict, code = Verdict.REFUSED, ReasonCode.CO_RECIPIENT
            reason = "another recipient of the same transaction refused it"
    charges = terms.limits.charges(
        res, client_ip=info.client_ip, proven=proven, refusal=reply,
        delivering=delivered is not None, reply=ctx.reply, size=len(message.raw),
        delivered_size=len(delivered or b""), now=now,
    )  # fmt: skip
    record = envelope_record(
        info, res, raw=message.raw, sha256=message.sha256, now=now, verdict=verdict,
        code=code, reason=reason, keep=None if proven else terms.refused_keep,
        delivered=delivered,
        from_header=message.first("From")[:2000],
        subject=message.subject[:2000],
        message_id=message.first("Message-ID")[:998],
        relay_message_id=ctx.relay_id if delivered else "",
        findings=json.dumps([f.as_dict() for f in findings], ensure_ascii=False),
        auth=json.dumps(ctx.auth, ensure_ascii=False, default=str),
        # Decoded text for full-text search, extracted off the loop with the parse
        # rather than under the archive's chain lock, where it would hold up every
        # other session's commit.
        extra={"search": search},
    )  # fmt: skip
    if delivered is None or verdict == "hold":  # held: archived, queued on release
        return Entry(record, charges=charges)
    outgoing = _outgoing(message, info, res, terms)
    return Entry(
        record, outgoing, charges=charges, no_reply_needed=wants_no_reply(message, res.direction)
    )


def _outgoing(message: Message, info: SessionInfo, res: Resolution, terms: Terms) -> Outgoing:
    """The delivery of one recipient's copy: a fresh VERP return path for its bounces."""
    token = new_token()
    original_ids = rw.message_ids(message.first("Message-ID"))
    return Outgoing(
        mail_from=return_path(
            token, key=terms.verp_key, domain=terms.domain, prefix=terms.bounce_prefix
        ),
        rcpt=res.recipient_email,
        token=token,
        # No backscatter: an automatic reply, or mail from the null sender, is delivered
        # but a failure is never answered with a notice.
        notify=info.mail_from.strip("<> ") != "" and not is_automatic(message),
        author=res.sender_role,
        original_message_id=original_ids[0] if original_ids else "",
    )


def refused_before_parsing(
    info: SessionInfo, rcpts: list[Resolution], raw: bytes, sha256: str, reply: Reply,
    code: ReasonCode, now: datetime, keep: int,
) -> list[Entry]:
    """The entries of a message refused before it was read (``code`` intake or budget),
    or when a stage failed (internal): bounded, and without search text (that would be a
    parse under the chain lock)."""
    return [
        Entry(envelope_record(info, res, raw=raw, sha256=sha256, now=now,
                              verdict=Verdict.REFUSED, code=code, reason=reply.text, keep=keep,
                              extra={"search": ("", False)}))
        for res in rcpts
    ]  # fmt: skip


def envelope_record(
    info: SessionInfo,
    res: Resolution,
    *,
    raw: bytes,
    sha256: str,
    now: datetime,
    verdict: str,
    code: ReasonCode,
    reason: str,
    keep: int | None = None,
    **fields: Any,
) -> Record:
    """The archive record of one recipient: what every record shares, plus ``fields``.
    ``code`` is the reason code its producer named (never derived from ``reason``).
    With ``keep`` (a sender not proven to be a party) only ``bounded(raw, keep)`` is
    stored; ``sha256`` and ``size`` always describe the whole message."""
    original = raw if keep is None else bounded(raw, keep)
    return Record(
        created_at=now, verdict=verdict, original=original, sha256=sha256,
        size=len(raw), truncated=len(original) < len(raw),
        session_id=info.session_id, order_id=res.order_id, direction=res.direction,
        alias=res.alias, mail_from=info.mail_from.lower(), rcpt=res.recipient_email,
        client_ip=info.client_ip, helo=info.helo[:255], reason=reason, reason_code=code,
        **fields,
    )  # fmt: skip
