"""The order of intake, as data: ``STAGES``, each a function of a frozen context.

Every stage takes a ``Context`` and the ``Ports`` and returns the next context (the same
one with its own field filled in) or a ``Refusal``; the first refusal ends the chain.
No stage opens a connection or names a table: what they need of the database, of DNS and
of the content workers (the sender check, the thread and review-request look-ups, the
policy, the opt-out look-up, the rewrite) reaches them as callables in ``Ports``, built by
the caller (relay.pipeline). So the whole path reads top to bottom in this file, and a
test can run it with any ports it likes.

``parse`` runs once per transaction (``MESSAGE``); the others once per recipient
(``RECIPIENT``), on a context that shares the one parsed Message.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from relay.core import replies
from relay.core.outcomes import ReasonCode
from relay.core.replies import Reply
from relay.core.values import Message, SenderCheck, SessionInfo
from relay.mail import rewrite as rw
from relay.policy.model import Finding, PolicyContext, Verdict
from relay.policy_pool import BudgetExceeded
from relay.store.resolve import Resolution
from relay.store.threads import ThreadIndex

# (message, session, recipient, From key) -> SenderCheck; the authentication seam.
Authenticator = Callable[[Message, SessionInfo, Resolution, str | None], Awaitable[SenderCheck]]


@dataclass(frozen=True)
class Ports:
    """The I/O and the off-loop CPU the stages need, as callables the caller builds."""

    read: Callable[[bytes], Awaitable[Message | Reply]]  # relay.intake.read, off the loop
    authenticate: Authenticator
    thread_index: Callable[[str, Message], Awaitable[ThreadIndex]]
    review_requests: Callable[[str], Awaitable[int]]  # prior requests in an order
    evaluate: Callable[[Message, PolicyContext], Awaitable[Verdict]]  # the content policy
    is_reply: Callable[[Resolution, ThreadIndex], bool]  # relay.ratelimits: reply window
    opt_out: Callable[[Resolution, bool, tuple[Finding, ...]], Awaitable[Reply | None]]
    rewrite: Callable[[bytes, rw.Rewrite], Awaitable[bytes]]  # off the loop
    now: Callable[[], datetime]
    domain: str
    marketplace: str
    helo_name: str


@dataclass(frozen=True)
class Context:
    """One message (and, after ``parse``, one recipient) as far as the chain has got.
    Each stage fills in its own fields; the accessors say which stage must have run."""

    session: SessionInfo
    raw: bytes
    message: Message | None = None  # parse
    res: Resolution | None = None  # set by the caller, per recipient
    check: SenderCheck | None = None  # check_sender
    thread: ThreadIndex | None = None  # load_thread
    policy: PolicyContext | None = None  # load_thread
    verdict: Verdict | None = None  # judge
    reply: bool = False  # check_opt_out: answers a recent message of the other party
    relay_id: str = ""  # rewrite: the Message-ID we mint
    delivered: bytes | None = None  # rewrite: the bytes the reader gets

    @property
    def msg(self) -> Message:
        assert self.message is not None, "parse has not run"
        return self.message

    @property
    def rcpt(self) -> Resolution:
        assert self.res is not None, "a recipient stage without a recipient"
        return self.res

    @property
    def auth(self) -> dict[str, Any]:
        return self.check.auth if self.check is not None else {}

    @property
    def findings(self) -> tuple[Finding, ...]:
        return self.verdict.findings if self.verdict is not None else ()


@dataclass(frozen=True)
class Refusal:
    """Why the chain stopped: the SMTP reply, and what the archive records for it
    (``verdict``: refused, tempfail or reject; ``code``, named by the stage that refused,
    so nothing reads ``reason`` back; ``reason``, the text for a person; ``ctx``: how far
    it got)."""

    reply: Reply
    verdict: str
    code: ReasonCode
    reason: str
    ctx: Context
    findings: tuple[Finding, ...] = field(default=())


Stage = Callable[[Context, Ports], Awaitable["Context | Refusal"]]


async def parse(ctx: Context, ports: Ports) -> Context | Refusal:
    """Read the bytes once (line endings, structure limits, header section, From,
    Subject, search text; relay.intake.read) into the Message every later stage reads."""
    try:
        message = await ports.read(ctx.raw)
    except BudgetExceeded as over:
        return Refusal(over.reply, "refused", ReasonCode.BUDGET, over.reply.text, ctx)
    if isinstance(message, Reply):
        return Refusal(message, "refused", ReasonCode.INTAKE, message.text, ctx)
    return dataclasses.replace(ctx, message=message)


async def check_sender(ctx: Context, ports: Ports) -> Context | Refusal:
    """Is the From the counterpart registered for this alias (and, with auth on,
    authenticated for its domain)? A 4xx refusal is a tempfail: the sender retries."""
    check = await ports.authenticate(ctx.msg, ctx.session, ctx.rcpt, ctx.msg.sender)
    ctx = dataclasses.replace(ctx, check=check)
    reply = check.refusal
    if reply is None:
        return ctx
    verdict = "tempfail" if reply.code < 500 else "refused"
    if reply == replies.STRANGER:  # not a party of the order at all
        return Refusal(reply, verdict, ReasonCode.STRANGER, "stranger", ctx)
    return Refusal(reply, verdict, ReasonCode.SENDER, f"{reply.enhanced} {reply.text}", ctx)


async def load_thread(ctx: Context, ports: Ports) -> Context | Refusal:
    """The messages this one refers to (In-Reply-To, References) that the relay carried,
    and the policy's context: reply or proactive, earlier review requests, days since
    delivery."""
    res = ctx.rcpt
    index = await ports.thread_index(res.order_id, ctx.msg)
    days = None
    if res.delivered_at is not None:
        days = (ports.now() - res.delivered_at).days
    policy = PolicyContext(
        direction=res.direction,
        order_id=res.order_id,
        buyer_locale=res.buyer_locale,
        thread="reply" if index.answers(res.stands_for) else "proactive",
        # Only seller messages can be review requests; spare the buyer's a query.
        prior_review_requests=(
            await ports.review_requests(res.order_id) if res.sender_role == "seller" else 0
        ),
        days_since_delivery=days,
        relay_domain=ports.domain,
    )
    return dataclasses.replace(ctx, thread=index, policy=policy)


async def judge(ctx: Context, ports: Ports) -> Context | Refusal:
    """The content policy's verdict; a reject (or no message left to forward) refuses."""
    assert ctx.policy is not None, "load_thread has not run"
    try:
        verdict = await ports.evaluate(ctx.msg, ctx.policy)
    except BudgetExceeded as over:
        return Refusal(over.reply, "refused", ReasonCode.BUDGET, over.reply.text, ctx)
    ctx = dataclasses.replace(ctx, verdict=verdict)
    if verdict.action == "reject" or verdict.message is None:
        reply = replies.POLICY_REJECT.with_text(verdict.reason or replies.POLICY_REJECT.text)
        return Refusal(reply, "reject", ReasonCode.POLICY, verdict.reason, ctx, verdict.findings)
    return ctx


async def check_opt_out(ctx: Context, ports: Ports) -> Context | Refusal:
    """A seller's proactive message to a buyer who opted out is refused (relay.ratelimits);
    whether it answers the buyer is kept for the limits charged at commit."""
    assert ctx.thread is not None, "load_thread has not run"
    is_reply = ports.is_reply(ctx.rcpt, ctx.thread)
    opted = await ports.opt_out(ctx.rcpt, is_reply, ctx.findings)
    if opted is not None:
        return Refusal(opted, "refused", ReasonCode.OPTED_OUT, opted.text, ctx, ctx.findings)
    return dataclasses.replace(ctx, reply=is_reply)


async def rewrite(ctx: Context, ports: Ports) -> Context | Refusal:
    """The anonymising rewrite of what the policy lets through (relay.mail.rewrite)."""
    assert ctx.verdict is not None and ctx.verdict.message is not None, "judge has not run"
    assert ctx.thread is not None, "load_thread has not run"
    res, index = ctx.rcpt, ctx.thread
    relay_id = rw.new_message_id(ports.domain)
    role = res.stands_for
    plan = rw.Rewrite(
        from_name=rw.display_name(res.sender_name, res.sender_role.capitalize(), ports.marketplace),
        from_alias=res.sender_alias,
        to_name=res.recipient_name,
        to_address=res.recipient_email,
        marketplace=ports.marketplace,
        message_id=relay_id,
        in_reply_to=rw.map_thread_ids(index.in_reply_to, lambda i: index.for_reader(i, role)),
        references=rw.map_thread_ids(index.references, lambda i: index.for_reader(i, role)),
        hops=ctx.msg.hops,
        relay_host=ports.helo_name,
        now=ports.now(),
        sender_addresses=tuple(sorted(res.sender_emails)),
    )
    try:
        delivered = await ports.rewrite(ctx.verdict.message, plan)
    except BudgetExceeded as over:
        return Refusal(over.reply, "refused", ReasonCode.BUDGET, over.reply.text, ctx)
    return dataclasses.replace(ctx, relay_id=relay_id, delivered=delivered)


MESSAGE: tuple[Stage, ...] = (parse,)  # once per transaction
RECIPIENT: tuple[Stage, ...] = (check_sender, load_thread, judge, check_opt_out, rewrite)
STAGES: tuple[Stage, ...] = MESSAGE + RECIPIENT


async def run(ctx: Context, ports: Ports, stages: tuple[Stage, ...]) -> Context | Refusal:
    """Each stage in order, until one refuses."""
    for stage in stages:
        out = await stage(ctx, ports)
        if isinstance(out, Refusal):
            return out
        ctx = out
    return ctx
