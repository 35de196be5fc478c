"""Mail to a signed return path: a bounce (DSN) about one of our deliveries.

Only a return path whose HMAC verifies is accepted at RCPT; forged or malformed ones get
the same 550 5.1.1 as an unknown alias. A DSN that reports failure marks the delivery
failed and tells the original sender through a notice (never naming the recipient); a
delay report is recorded only. The DSN itself is archived (kind ``dsn``) for ops.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import compat32
from typing import TYPE_CHECKING

import structlog

from relay.bounce import explain, notice_entry, original_from
from relay.clock import utcnow
from relay.core import replies
from relay.core.outcomes import ReasonCode, Verdict
from relay.core.replies import Reply
from relay.mail.dsn import parse_dsn
from relay.mail.limits import StructureLimits
from relay.mail.limits import check as check_structure
from relay.mail.verp import parse_return_path
from relay.pipeline import SessionInfo
from relay.policy_pool import Budget, BudgetExceeded, Runner, shared_runner
from relay.settings import Settings
from relay.store import ledger, originals, queue
from relay.store.archive import Record, bounded
from relay.store.commit import Entry, GroupCommitter

if TYPE_CHECKING:  # a handle passed through to relay.store; no SQL here
    from sqlalchemy.ext.asyncio import AsyncEngine

log = structlog.get_logger("relay.bounce")


@dataclass(frozen=True)
class DsnOutcome:
    action: str  # failed|delayed|delivered|relayed|expanded
    status: str  # enhanced status code, e.g. 5.1.1


_PRECEDENCE = {"failed": 0, "delayed": 1, "delivered": 2, "relayed": 3, "expanded": 4}


def read_dsn(raw: bytes) -> DsnOutcome | None:
    """The report's decisive action and status; None when the message is not a bounce.

    Each delivery has one recipient, so a report is about that one mailbox; a remote
    server that expanded it (a list, a forward) may report several, and then any failure
    decides: the sender should hear that their message did not arrive everywhere.
    ``relay.mail.dsn.parse_dsn`` reads RFC 3464 reports and recognisable plain bounces.
    """
    report = parse_dsn(raw)
    if report is None or not report.recipients:
        return None
    if not report.standard and not _from_mail_system(raw):
        # A plain-text guess about mail from a person or an autoresponder ("I am out of
        # the office, mailbox unavailable") must not fail a delivery and alarm the sender.
        return None
    worst = min(report.recipients, key=lambda r: _PRECEDENCE.get(r.action, len(_PRECEDENCE)))
    return DsnOutcome(worst.action, worst.status or "")


_SYSTEM_SENDERS = ("mailer-daemon", "postmaster", "mail delivery", "maildelivery")


def _from_mail_system(raw: bytes) -> bool:
    """Whether From names a mail system (MAILER-DAEMON, postmaster, "Mail Delivery ...")."""
    headers = BytesHeaderParser(policy=compat32).parsebytes(raw)
    sender = str(headers.get("From", "") or "").lower()
    return any(word in sender for word in _SYSTEM_SENDERS)


def _event(action: str) -> str:
    """The delivery event for a report: ``bounced`` and ``delayed`` speak for themselves;
    a remote "delivered" must not read like our own successful delivery."""
    return {"failed": "bounced", "delayed": "delayed"}.get(action, f"dsn-{action}")[:16]


def scan(raw: bytes, limits: StructureLimits) -> tuple[DsnOutcome | Reply | None, str]:
    """All the content work on a report, off the loop (relay.policy_pool): the linear
    structure scan first (relay.mail.limits), so the parser never sees a shape over a
    limit; then the report; and the digest the archive records."""
    digest = hashlib.sha256(raw).hexdigest()
    refusal = check_structure(raw, limits)
    if refusal is not None:
        return refusal, digest
    return read_dsn(raw), digest


class SignedBounces:
    def __init__(
        self,
        settings: Settings,
        engine: AsyncEngine,
        committer: GroupCommitter,
        key: bytes,
        content: Runner | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.committer = committer
        self.key = key
        m = settings.message
        self.structure = m.structure()
        self.content = content or shared_runner(Budget.of(m), m.workers)

    def check(self, local: str) -> str | None:
        """The token of a correctly signed return path (no database access)."""
        return parse_return_path(local, key=self.key, prefix=self.settings.bounce.local_prefix)

    async def check_known(self, local: str) -> str | None:
        """``check`` plus: the token names one of our deliveries. A signature only proves
        we minted the address; a return path whose delivery row is gone (another
        database, a restored backup) should get the same 550 as a forgery."""
        token = self.check(local)
        if token is None:
            return None
        return token if await queue.known_token(self.engine, token) else None

    async def accept(self, info: SessionInfo, tokens: list[str], raw: bytes) -> str:
        # Parsing is CPU work on untrusted input of up to the size limit: off the loop.
        try:
            outcome, digest = await self.content.run(scan, raw, self.structure)
        except BudgetExceeded as over:
            outcome, digest = over.reply, hashlib.sha256(raw).hexdigest()
        now = utcnow()
        if isinstance(outcome, Reply):  # over a limit: archived (bounded) and refused
            kept = bounded(raw, self.settings.archive.refused_keep)
            record = Record(
                created_at=now, verdict=Verdict.REFUSED, kind="dsn", original=kept,
                sha256=digest, size=len(raw), truncated=len(kept) < len(raw),
                session_id=info.session_id, mail_from=info.mail_from.lower(),
                client_ip=info.client_ip, helo=info.helo[:255], reason=outcome.text,
                reason_code=ReasonCode.INTAKE,
            )  # fmt: skip
            await self.committer.submit([Entry(record)])
            log.info("bounce.refused", reply=str(outcome))
            return str(outcome)
        detail = f"DSN {outcome.action} {outcome.status}" if outcome else ""
        async with ledger.open(self.engine) as book:
            # Read inside the ledger's transaction, after the chain lock: two reports about
            # the same delivery are then serialised, and only the first sends a notice.
            rows = await queue.reported(book, tokens)
            record = Record(
                created_at=now,
                verdict=Verdict.ABSORBED,
                kind="dsn",
                original=raw,
                sha256=digest,
                session_id=info.session_id,
                order_id=rows[0].order_id if rows else None,  # ops find it with the order
                alias=rows[0].alias if rows else "",
                mail_from=info.mail_from.lower(),
                client_ip=info.client_ip,
                helo=info.helo[:255],
                reason=f"{outcome.action} {outcome.status}"
                if outcome
                else "not a delivery status report",
                reason_code=ReasonCode.DSN if outcome else ReasonCode.NOT_DSN,
            )
            entries = [Entry(record)]
            if outcome is not None and rows:
                failed = await queue.settle_by_dsn(
                    book, rows, event=_event(outcome.action), detail=detail,
                    failed=outcome.action == "failed",
                )  # fmt: skip
                for row in failed:
                    if row.notify and row.mail_from:
                        notice = await self._notice(book, row.archive_id, outcome)
                        if notice is not None:
                            entries.append(notice)
            await book.append(entries)
        self.committer.committed.set()
        log.info(
            "bounce.received", action=outcome.action if outcome else "none", deliveries=len(rows)
        )
        return str(replies.OK.with_text("Bounce received"))

    async def _notice(
        self, book: ledger.Ledger, archive_id: int, outcome: DsnOutcome
    ) -> Entry | None:
        original = original_from(await originals.head(book.conn, archive_id))
        if original is None:
            return None
        code = 550 if outcome.status.startswith("5") else 450
        return notice_entry(
            original,
            reason=explain(code, outcome.status),
            domain=self.settings.relay.domain,
            marketplace=self.settings.relay.marketplace,
            now=utcnow(),
        )
