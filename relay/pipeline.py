"""The message pipeline after DATA: inbound -> sender check -> policy -> rewrite -> commit.

Each stage is a plain function of frozen values. The pipeline answers for the whole
transaction: every alias recipient gets its own archive record and delivery, and if any
recipient must refuse the message, none of them receives it (SMTP has one reply for DATA,
and a partial delivery would be a silent one).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from relay import replies
from relay.archive import Record
from relay.authn.fromaddr import FromError, header_values, single_from
from relay.commit import Entry, GroupCommitter, Outgoing
from relay.db.schema import utcnow
from relay.mail import rewrite as rw
from relay.mail.autoreply import is_automatic
from relay.mail.parse import Inbound, intake
from relay.mail.verp import new_token, return_path
from relay.policy.model import PolicyContext, Verdict
from relay.replies import Reply
from relay.resolve import Resolution
from relay.search import extract
from relay.settings import Settings
from relay.threads import ThreadIndex, load_thread_index, prior_review_requests

log = structlog.get_logger("relay.pipeline")


@dataclass(frozen=True)
class SessionInfo:
    session_id: str
    client_ip: str
    helo: str
    mail_from: str


@dataclass(frozen=True)
class SenderCheck:
    """Outcome of the sender check: ``refusal`` is None for a participant."""

    refusal: Reply | None
    auth: dict[str, Any] = field(default_factory=dict)


# (inbound, session, recipient, from-address) -> SenderCheck; the authentication seam.
Authenticator = Callable[[Inbound, SessionInfo, Resolution, str | None], Awaitable[SenderCheck]]


class Policy(Protocol):
    """What the pipeline needs of a content policy (relay.policy_pool.PolicyRunner)."""

    async def evaluate(self, raw: bytes, ctx: PolicyContext) -> Verdict: ...


def from_mailbox(inbound: Inbound) -> str | None:
    """The single From mailbox, lower-cased; None unless there is exactly one plain one.

    The strict reader of relay.authn (raw, undecoded values: encoded-word, quoting and
    display-name tricks fail), the same one the authentication judgement uses.
    """
    try:
        return single_from(header_values(inbound.raw)).lower()
    except FromError:
        return None


async def registered_sender(
    inbound: Inbound, info: SessionInfo, res: Resolution, sender: str | None
) -> SenderCheck:
    """The minimum check: the From mailbox is the counterpart's registered address."""
    if sender is None or sender not in res.sender_emails:
        return SenderCheck(replies.STRANGER)
    return SenderCheck(None)


@dataclass
class _Judged:
    res: Resolution
    verdict: str
    reason: str = ""
    findings: list[dict[str, str]] = field(default_factory=list)
    auth: dict[str, Any] = field(default_factory=dict)
    message: bytes | None = None
    refusal: Reply | None = None
    relay_id: str = ""


class Pipeline:
    def __init__(
        self,
        settings: Settings,
        engine: AsyncEngine,
        committer: GroupCommitter,
        policy: Policy | None,
        *,
        verp_key: bytes,
        authenticator: Authenticator = registered_sender,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.committer = committer
        self.policy = policy
        self.verp_key = verp_key
        self.authenticator = authenticator

    async def accept(self, info: SessionInfo, rcpts: list[Resolution], raw: bytes) -> Reply:
        now = utcnow()
        inbound = intake(raw, max_hops=self.settings.relay.max_hops)
        if isinstance(inbound, Reply):
            await self._archive_refused(info, rcpts, raw, inbound, now)
            return inbound
        sender = from_mailbox(inbound)
        judged = [await self._judge(inbound, info, res, sender) for res in rcpts]
        refusal = next((j.refusal for j in judged if j.refusal), None)
        search_text = extract(inbound.raw)
        entries = [
            self._entry(inbound, info, j, now, search_text, refused=refusal is not None)
            for j in judged
        ]
        await self.committer.submit(entries)
        if refusal is not None:
            log.info("message.refused", reply=str(refusal), recipients=len(rcpts))
            return refusal
        ids = ", ".join(e.record.relay_message_id.split("@")[0][:12] for e in entries)
        log.info("message.accepted", recipients=len(rcpts), queued=ids)
        return replies.QUEUED.with_text(f"Queued as {ids}")

    async def _judge(
        self, inbound: Inbound, info: SessionInfo, res: Resolution, sender: str | None
    ) -> _Judged:
        check = await self.authenticator(inbound, info, res, sender)
        if check.refusal is not None:
            reply = check.refusal
            reason = "stranger" if reply == replies.STRANGER else f"{reply.enhanced} {reply.text}"
            verdict = "tempfail" if reply.code < 500 else "refused"  # 4xx: the sender retries
            return _Judged(res, verdict, reason, auth=check.auth, refusal=reply)
        index = await load_thread_index(self.engine, res.order_id, inbound)
        verdict = await self._evaluate(inbound.raw, await self._context(res, index))
        findings = [f.as_dict() for f in verdict.findings]
        if verdict.action == "reject" or verdict.message is None:
            reply = replies.POLICY_REJECT.with_text(verdict.reason or replies.POLICY_REJECT.text)
            return _Judged(res, "reject", verdict.reason, findings, check.auth, refusal=reply)
        relay_id = rw.new_message_id(self.settings.relay.domain)
        delivered = rw.rewrite_message(
            verdict.message, self._rewrite(inbound, res, relay_id, index)
        )
        return _Judged(res, verdict.action, "", findings, check.auth, delivered, relay_id=relay_id)

    async def _context(self, res: Resolution, index: ThreadIndex) -> PolicyContext:
        days = None
        if res.delivered_at is not None:
            days = (utcnow() - res.delivered_at).days
        return PolicyContext(
            direction=res.direction,  # type: ignore[arg-type]
            order_id=res.order_id,
            buyer_locale=res.buyer_locale,
            thread="reply" if index.answers(res.stands_for) else "proactive",
            # Only seller messages can be review requests; spare the buyer's a query.
            prior_review_requests=(
                await prior_review_requests(self.engine, res.order_id)
                if res.sender_role == "seller"
                else 0
            ),
            days_since_delivery=days,
            relay_domain=self.settings.relay.domain,
        )

    async def _evaluate(self, raw: bytes, ctx: PolicyContext) -> Verdict:
        if self.policy is None or not self.settings.policy.enabled:
            return Verdict("deliver", (), raw)
        return await self.policy.evaluate(raw, ctx)

    def _rewrite(
        self, inbound: Inbound, res: Resolution, relay_id: str, index: ThreadIndex
    ) -> rw.Rewrite:
        market = self.settings.relay.marketplace
        role = res.stands_for
        return rw.Rewrite(
            from_name=rw.display_name(res.sender_name, res.sender_role.capitalize(), market),
            from_alias=res.sender_alias,
            to_name=res.recipient_name,
            to_address=res.recipient_email,
            marketplace=market,
            message_id=relay_id,
            in_reply_to=rw.map_thread_ids(index.in_reply_to, lambda i: index.for_reader(i, role)),
            references=rw.map_thread_ids(index.references, lambda i: index.for_reader(i, role)),
            hops=inbound.hops,
            relay_host=self.settings.relay.helo_name,
            now=utcnow(),
            sender_addresses=tuple(sorted(res.sender_emails)),
        )

    def _entry(
        self,
        inbound: Inbound,
        info: SessionInfo,
        j: _Judged,
        now: datetime,
        search_text: tuple[str, bool],
        *,
        refused: bool,
    ) -> Entry:
        res = j.res
        delivered = None if refused else j.message
        verdict = j.verdict
        reason = j.reason
        if refused and j.refusal is None:
            verdict, reason = "refused", "another recipient of the same transaction refused it"
        record = _envelope_record(
            info, res, raw=inbound.raw, sha256=inbound.sha256, now=now, verdict=verdict,
            reason=reason,
            delivered=delivered,
            from_header=inbound.first("From")[:2000],
            subject=inbound.decoded("Subject")[:2000],
            message_id=inbound.first("Message-ID")[:998],
            relay_message_id=j.relay_id if delivered else "",
            findings=json.dumps(j.findings, ensure_ascii=False),
            auth=json.dumps(j.auth, ensure_ascii=False, default=str),
            # Decoded text for full-text search, extracted here rather than under the
            # archive's chain lock, where it would hold up every other session's commit.
            extra={"search": search_text},
        )  # fmt: skip
        if delivered is None:
            return Entry(record)
        token = new_token()
        original_ids = rw.message_ids(inbound.first("Message-ID"))
        outgoing = Outgoing(
            mail_from=return_path(
                token,
                key=self.verp_key,
                domain=self.settings.relay.domain,
                prefix=self.settings.bounce.local_prefix,
            ),
            rcpt=res.recipient_email,
            token=token,
            # No backscatter: an automatic reply, or mail from the null sender, is delivered
            # but a failure is never answered with a notice.
            notify=info.mail_from.strip("<> ") != "" and not is_automatic(inbound.headers),
            author=res.sender_role,
            original_message_id=original_ids[0] if original_ids else "",
        )
        return Entry(record, outgoing)

    async def _archive_refused(
        self, info: SessionInfo, rcpts: list[Resolution], raw: bytes, reply: Reply, now: datetime
    ) -> None:
        digest = hashlib.sha256(raw).hexdigest()
        entries = [
            Entry(_envelope_record(info, res, raw=raw, sha256=digest, now=now, verdict="refused",
                                   reason=reply.text))
            for res in rcpts
        ]  # fmt: skip
        await self.committer.submit(entries)


def _envelope_record(
    info: SessionInfo,
    res: Resolution,
    *,
    raw: bytes,
    sha256: str,
    now: datetime,
    verdict: str,
    reason: str,
    **fields: Any,
) -> Record:
    """The archive record of one recipient: what every record shares, plus ``fields``."""
    return Record(
        created_at=now, verdict=verdict, original=raw, sha256=sha256,
        session_id=info.session_id, order_id=res.order_id, direction=res.direction,
        alias=res.alias, mail_from=info.mail_from.lower(), rcpt=res.recipient_email,
        client_ip=info.client_ip, helo=info.helo[:255], reason=reason, **fields,
    )  # fmt: skip
