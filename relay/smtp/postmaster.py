"""postmaster@ and abuse@ the relay domain: accepted from anyone, for ops only.

RFC 5321 4.5.1 requires a postmaster mailbox that takes mail from anyone, and RFC 2142
names abuse@ as where complaints go. They are not aliases: no order, no counterpart, so
there is no sender check and no content policy. Everything else holds: the intake checks
(size, bare line endings and smuggling, hop count) refuse what they refuse anywhere, the
message is archived (kind ``ops``) and, when ``relay.postmaster`` is set, queued for that
one address in the same commit; the 250 comes only after it. Without ``relay.postmaster``
the message is archived only (verdict ``absorbed``) and ops read it with ``relay archive
search --kind ops``.

This path reaches exactly one address, chosen by the operator and outside the relay
domain (settings refuse anything else), so it is neither an open relay nor a way to any
party: the recipients named in the message itself are never used. Delivery failures are
not reported back to the sender (no backscatter from a mailbox anyone may write to).
"""

from __future__ import annotations

import hashlib
from email.utils import format_datetime
from typing import TypedDict, Unpack

import structlog

from relay.clock import utcnow
from relay.core import replies
from relay.core.outcomes import ReasonCode, Verdict
from relay.core.replies import Reply
from relay.mail.limits import StructureLimits
from relay.mail.limits import check as check_structure
from relay.mail.parse import intake
from relay.mail.verp import new_token, return_path
from relay.pipeline import SessionInfo
from relay.policy_pool import Budget, BudgetExceeded, Runner, shared_runner
from relay.settings import Settings
from relay.store.archive import Record
from relay.store.commit import Entry, GroupCommitter, Outgoing

log = structlog.get_logger("relay.smtp")
KIND = "ops"


class Listed(TypedDict, total=False):
    """The header fields the archive lists for an ops message (archive.Record's names)."""

    from_header: str
    subject: str
    message_id: str


def prepare(
    raw: bytes, max_hops: int, limits: StructureLimits
) -> tuple[Listed | Reply, str]:
    """All the content work, off the loop (relay.policy_pool): the linear structure scan
    (relay.mail.limits) before any parse, then intake and the fields the archive lists;
    and the digest."""
    digest = hashlib.sha256(raw).hexdigest()
    refusal = check_structure(raw, limits)
    if refusal is not None:
        return refusal, digest
    inbound = intake(raw, max_hops=max_hops)
    if isinstance(inbound, Reply):
        return inbound, digest
    fields: Listed = {
        "from_header": inbound.first("From")[:2000],
        "subject": inbound.decoded("Subject")[:2000],
        "message_id": inbound.first("Message-ID")[:998],
    }
    return fields, digest


class OpsMailbox:
    def __init__(
        self,
        settings: Settings,
        committer: GroupCommitter,
        verp_key: bytes,
        content: Runner | None = None,
    ) -> None:
        self.settings = settings
        self.committer = committer
        self.verp_key = verp_key
        m = settings.message
        self.structure = m.structure()
        self.content = content or shared_runner(Budget.of(m), m.workers)

    async def accept(self, info: SessionInfo, mailboxes: list[str], raw: bytes) -> Reply:
        relay = self.settings.relay
        alias = ", ".join(f"{m}@{relay.domain}" for m in dict.fromkeys(mailboxes))
        now = utcnow()
        code = ReasonCode.INTAKE  # a refusal below: malformed or over a limit, unless...
        try:
            fields, digest = await self.content.run(prepare, raw, relay.max_hops, self.structure)
        except BudgetExceeded as over:  # ...reading it took more than its budget
            fields, digest = over.reply, hashlib.sha256(raw).hexdigest()
            code = ReasonCode.BUDGET
        if isinstance(fields, Reply):
            record = self._record(
                info, raw, alias, digest, verdict=Verdict.REFUSED, code=code, reason=fields.text
            )
            await self.committer.submit([Entry(record)])
            log.info("ops.refused", reply=str(fields))
            return fields
        target = relay.postmaster.strip()
        if not target:
            reason = "relay.postmaster is not set: archived only"
            record = self._record(
                info, raw, alias, digest, verdict=Verdict.ABSORBED, code=ReasonCode.OPS,
                reason=reason, **fields,
            )  # fmt: skip
            await self.committer.submit([Entry(record)])
            log.warning("ops.archived_only", mailbox=alias)
            return replies.QUEUED.with_text("Accepted for the postmaster")
        trace = (
            f"Received: from {_clean(info.helo)} ([{_clean(info.client_ip)}])\r\n"
            f"\tby {relay.helo_name} with ESMTP id {info.session_id}\r\n"
            f"\tfor <{alias.split(',')[0]}>; {format_datetime(now)}\r\n"
        ).encode()
        record = self._record(
            info, raw, alias, digest, verdict=Verdict.DELIVER, code=ReasonCode.OPS,
            delivered=trace + raw, rcpt=target, **fields,
        )  # fmt: skip
        token = new_token()
        outgoing = Outgoing(
            mail_from=return_path(
                token,
                key=self.verp_key,
                domain=relay.domain,
                prefix=self.settings.bounce.local_prefix,
            ),
            rcpt=target,
            token=token,
            notify=False,
        )
        await self.committer.submit([Entry(record, outgoing)])
        log.info("ops.accepted", mailbox=alias)
        return replies.QUEUED.with_text(f"Queued for the postmaster as {token[:12]}")

    def _record(
        self,
        info: SessionInfo,
        raw: bytes,
        alias: str,
        digest: str,
        *,
        verdict: Verdict,
        code: ReasonCode,
        reason: str = "",
        delivered: bytes | None = None,
        rcpt: str = "",
        **fields: Unpack[Listed],
    ) -> Record:
        return Record(
            created_at=utcnow(),
            verdict=verdict,
            kind=KIND,
            original=raw,
            sha256=digest,
            delivered=delivered,
            session_id=info.session_id,
            alias=alias[:320],
            mail_from=info.mail_from.lower()[:320],
            rcpt=rcpt,
            client_ip=info.client_ip,
            helo=info.helo[:255],
            reason=reason,
            reason_code=code,
            **fields,
        )


def _clean(text: str) -> str:
    """A value from the client inside our trace header: one line, printable, bounded."""
    return "".join(c if c.isprintable() and c not in "()[]" else "?" for c in text)[:200]
