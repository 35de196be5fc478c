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
from sqlalchemy.exc import DataError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from relay.authn.fromaddr import FromError, canonical_address, header_values, single_from
from relay.clock import utcnow
from relay.core import replies
from relay.core.replies import Reply
from relay.mail import rewrite as rw
from relay.mail.autoreply import is_automatic
from relay.mail.limits import StructureLimits
from relay.mail.limits import check as check_structure
from relay.mail.parse import Inbound, has_bare_line_ending_or_nul, intake
from relay.mail.verp import new_token, return_path
from relay.policy.model import PolicyContext, Verdict
from relay.policy_pool import Budget, BudgetExceeded, shared_runner
from relay.ratelimits import LimitExceeded, RateLimits, wants_no_reply
from relay.settings import Settings
from relay.store import holds
from relay.store.archive import Record, bounded
from relay.store.commit import Entry, GroupCommitter, Outgoing
from relay.store.resolve import Resolution
from relay.store.search import extract
from relay.store.threads import ThreadIndex, load_thread_index, prior_review_requests

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
    """The single From mailbox as a comparison key (relay.authn.fromaddr.canonical_address);
    None unless there is exactly one plain one.

    The strict reader of relay.authn (raw, undecoded values: encoded-word, quoting and
    display-name tricks fail), the same one the authentication judgement uses.
    """
    try:
        return canonical_address(single_from(header_values(inbound.raw)))
    except FromError:
        return None


async def registered_sender(
    inbound: Inbound, info: SessionInfo, res: Resolution, sender: str | None
) -> SenderCheck:
    """The minimum check: the From mailbox is the counterpart's registered address (both
    compared as keys, so capitals and U-labels match as providers match them)."""
    if sender is None or sender not in {canonical_address(e) for e in res.sender_emails}:
        return SenderCheck(replies.STRANGER)
    return SenderCheck(None)


@dataclass(frozen=True)
class Prepared:
    """What the event loop needs of a message, computed once off the loop."""

    inbound: Inbound
    sender: str | None
    subject: str
    search_text: tuple[str, bool]


def prepare(raw: bytes, max_hops: int, limits: StructureLimits) -> Prepared | Reply:
    """All the content work of intake, in a worker thread: the linear structure scan
    first (relay.mail.limits), so nothing quadratic ever sees a message over a limit;
    then the header parse, the From, the decoded Subject and the search text."""
    if has_bare_line_ending_or_nul(raw):
        return replies.BAD_LINE_ENDINGS
    refusal = check_structure(raw, limits)
    if refusal is not None:
        return refusal
    inbound = intake(raw, max_hops=max_hops)
    if isinstance(inbound, Reply):
        return inbound
    return Prepared(inbound, from_mailbox(inbound), inbound.decoded("Subject"), extract(raw))


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
    proven: bool = False  # the sender check passed: the original is archived in full
    reply: bool = False  # answers a recent message of the other party (relay.ratelimits)


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
        holds.configure(settings.policy.hold_alert_after)  # the overdue metric's age
        self.authenticator = authenticator
        m = settings.message
        self.budget = Budget(m.cpu_budget.total_seconds(), m.memory_budget_mb * 1024 * 1024)
        self.structure = m.structure()
        # The policy's worker processes when there are some (policy.workers), so intake
        # and rewrite CPU stay out of this process too; else threads here.
        self.content = getattr(policy, "content", None) or shared_runner(self.budget, m.workers)
        self.limits = RateLimits(settings)

    async def accept(self, info: SessionInfo, rcpts: list[Resolution], raw: bytes) -> Reply:
        now = utcnow()
        try:
            return await self._accept(info, rcpts, raw, now)
        except Exception as err:
            if _ours(err):
                raise  # database or disk: 451, the sender retries and nothing is lost
            # A content stage failed on these bytes: retrying would fail again for days.
            # The stages are meant to be total; this is the last resort.
            # Where, not what: an exception's text may quote the message (an address).
            tb = err.__traceback__
            while tb is not None and tb.tb_next is not None:
                tb = tb.tb_next
            at = f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb else ""
            log.error("message.unprocessable", error=type(err).__name__, at=at)
            reply = replies.UNPROCESSABLE
            reason = f"internal processing error ({type(err).__name__})"
            await self._archive_refused(info, rcpts, raw, reply.with_text(reason), now)
            return reply

    async def _accept(
        self, info: SessionInfo, rcpts: list[Resolution], raw: bytes, now: datetime
    ) -> Reply:
        try:
            prepared = await self.content.run(
                prepare, raw, self.settings.relay.max_hops, self.structure
            )
        except BudgetExceeded as over:
            prepared = over.reply
        if isinstance(prepared, Reply):
            await self._archive_refused(info, rcpts, raw, prepared, now)
            log.info("message.refused", reply=str(prepared), recipients=len(rcpts))
            return prepared
        inbound, sender = prepared.inbound, prepared.sender
        judged = [await self._judge(inbound, info, res, sender) for res in rcpts]
        refusal = next((j.refusal for j in judged if j.refusal), None)
        entries = [
            self._entry(inbound, info, j, now, prepared, refused=refusal is not None)
            for j in judged
        ]
        try:
            await self.committer.submit(entries)
        except LimitExceeded as over:  # archived bounded, nothing queued (relay.ratelimits)
            log.info("message.refused", reply=str(over.reply), recipients=len(rcpts))
            return over.reply
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
        judged = await self._judge_proven(inbound, res, check)
        judged.proven = True
        return judged

    async def _judge_proven(self, inbound: Inbound, res: Resolution, check: SenderCheck) -> _Judged:
        """The sender is the party: thread, content policy, rewrite."""
        index = await load_thread_index(self.engine, res.order_id, inbound)
        try:
            verdict = await self._evaluate(inbound.raw, await self._context(res, index))
        except BudgetExceeded as over:
            return _Judged(res, "refused", over.reply.text, auth=check.auth, refusal=over.reply)
        findings = [f.as_dict() for f in verdict.findings]
        if verdict.action == "reject" or verdict.message is None:
            reply = replies.POLICY_REJECT.with_text(verdict.reason or replies.POLICY_REJECT.text)
            return _Judged(res, "reject", verdict.reason, findings, check.auth, refusal=reply)
        is_reply = self.limits.is_reply(res, index)
        opted = await self.limits.opt_out(
            self.engine, res, reply=is_reply, findings=verdict.findings
        )
        if opted is not None:
            return _Judged(res, "refused", opted.text, findings, check.auth, refusal=opted)
        relay_id = rw.new_message_id(self.settings.relay.domain)
        try:
            delivered = await self.content.run(
                rw.rewrite_message, verdict.message, self._rewrite(inbound, res, relay_id, index)
            )
        except BudgetExceeded as over:
            return _Judged(res, "refused", over.reply.text, auth=check.auth, refusal=over.reply)
        return _Judged(
            res, verdict.action, verdict.reason if verdict.action == "hold" else "", findings,
            check.auth, delivered, relay_id=relay_id,
            reply=is_reply,
        )

    async def _context(self, res: Resolution, index: ThreadIndex) -> PolicyContext:
        days = None
        if res.delivered_at is not None:
            days = (utcnow() - res.delivered_at).days
        return PolicyContext(
            direction=res.direction,
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
        prepared: Prepared,
        *,
        refused: bool,
    ) -> Entry:
        res = j.res
        delivered = None if refused else j.message
        verdict = j.verdict
        reason = j.reason
        if refused and j.refusal is None:
            verdict, reason = "refused", "another recipient of the same transaction refused it"
        charges = self.limits.charges(
            res, client_ip=info.client_ip, proven=j.proven, refusal=j.refusal,
            delivering=delivered is not None, reply=j.reply, size=len(inbound.raw),
            delivered_size=len(delivered or b""), now=now,
        )
        record = _envelope_record(
            info, res, raw=inbound.raw, sha256=inbound.sha256, now=now, verdict=verdict,
            reason=reason, keep=None if j.proven else self.settings.archive.refused_keep,
            delivered=delivered,
            from_header=inbound.first("From")[:2000],
            subject=prepared.subject[:2000],
            message_id=inbound.first("Message-ID")[:998],
            relay_message_id=j.relay_id if delivered else "",
            findings=json.dumps(j.findings, ensure_ascii=False),
            auth=json.dumps(j.auth, ensure_ascii=False, default=str),
            # Decoded text for full-text search, extracted here rather than under the
            # archive's chain lock, where it would hold up every other session's commit.
            extra={"search": prepared.search_text},
        )  # fmt: skip
        if delivered is None or verdict == "hold":  # held: archived, queued on release
            return Entry(record, charges=charges)
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
        return Entry(
            record, outgoing, charges=charges,
            no_reply_needed=wants_no_reply(inbound.headers, res.direction),
        )

    async def _archive_refused(
        self, info: SessionInfo, rcpts: list[Resolution], raw: bytes, reply: Reply, now: datetime
    ) -> None:
        digest = hashlib.sha256(raw).hexdigest()
        keep = self.settings.archive.refused_keep  # no sender was proven yet
        entries = [
            Entry(_envelope_record(info, res, raw=raw, sha256=digest, now=now, verdict="refused",
                                   reason=reply.text, keep=keep,
                                   # refused before parsing: never parsed for search either
                                   # (that would run under the chain lock, on the loop)
                                   extra={"search": ("", False)}))
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
    keep: int | None = None,
    **fields: Any,
) -> Record:
    """The archive record of one recipient: what every record shares, plus ``fields``.
    With ``keep`` (a sender not proven to be a party) only ``bounded(raw, keep)`` is
    stored; ``sha256`` and ``size`` always describe the whole message."""
    original = raw if keep is None else bounded(raw, keep)
    return Record(
        created_at=now, verdict=verdict, original=original, sha256=sha256,
        size=len(raw), truncated=len(original) < len(raw),
        session_id=info.session_id, order_id=res.order_id, direction=res.direction,
        alias=res.alias, mail_from=info.mail_from.lower(), rcpt=res.recipient_email,
        client_ip=info.client_ip, helo=info.helo[:255], reason=reason, **fields,
    )  # fmt: skip


def _ours(err: Exception) -> bool:
    """Our own resource trouble (database, disk, a timeout under load), as opposed to a
    content stage failing on these particular bytes. A value the database refuses for
    its content (DataError) is the message's doing."""
    if isinstance(err, DataError):
        return False
    return isinstance(err, SQLAlchemyError | OSError | TimeoutError | MemoryError)
