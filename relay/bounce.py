"""Bounce notices: telling a sender their message did not arrive, without saying where.

A remote server's error text usually quotes the recipient's address ("550 5.1.1
<support@shop.example>: no such user"), so a notice never carries it: it explains the
enhanced status code in plain words and names the order and the alias the sender used.
Notices go from the null return path with ``Auto-Submitted: auto-replied`` so they can
never start a loop, and never to the null sender nor about automatic mail (an
out-of-office, a list message: RFC 3834 says such mail is not answered).
"""

from __future__ import annotations

import hashlib
import re
import textwrap
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.policy import SMTP, compat32
from email.utils import format_datetime, formataddr, getaddresses

from relay.core.outcomes import Direction, ReasonCode, Verdict
from relay.mail import notices_i18n
from relay.mail.autoreply import is_automatic
from relay.mail.rewrite import new_message_id
from relay.mail.verp import new_token
from relay.store.archive import Record
from relay.store.ledger import Entry, Outgoing
from relay.store.originals import Head

_CLASSES = {
    "1": "the recipient's mailbox address is no longer valid",
    "2": "the recipient's mailbox is full or unavailable",
    "3": "the recipient's mail system is not accepting mail",
    "4": "the message could not be routed to the recipient's mail system",
    "5": "the recipient's mail system rejected the mail protocol exchange",
    "6": "the recipient's mail system could not accept the message content",
    "7": "the recipient's mail system refused the message for security or policy reasons",
}


def explain(
    code: int | None, enhanced: str = "", *, expired: bool = False, after: timedelta | None = None
) -> str:
    """A plain sentence from the codes alone: never from the remote server's text."""
    if expired:
        return f"the recipient's mail system could not be reached for {_span(after)}"
    parts = enhanced.split(".") if enhanced else []
    if len(parts) == 3 and parts[1] in _CLASSES:
        return _CLASSES[parts[1]]
    if code and code >= 500:
        return "the recipient's mail system refused the message permanently"
    return "the message could not be delivered"


def _span(after: timedelta | None) -> str:
    if after is None:
        return "several days"
    seconds = after.total_seconds()
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = round(seconds / size)
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return "a while"


@dataclass(frozen=True)
class Original:
    """What a notice may say about the message it is about."""

    order_id: str
    alias: str
    subject: str
    sent_at: datetime
    sender: str  # the original sender's real address: the notice goes there
    automatic: bool = False  # an auto-reply or a bounce itself: never answered (RFC 3834)
    message_id: str = ""  # the sender's own Message-ID: the notice threads under it
    locale: str = "en"  # the order's buyer locale: the notice's language (notices_i18n)


def sender_of(from_header: str) -> str:
    pairs = getaddresses([from_header])
    return pairs[0][1].lower() if len(pairs) == 1 and "@" in pairs[0][1] else ""


def original_from(head: Head | None) -> Original | None:
    """The notice's view of an archived message (relay.store.originals); None for
    notices and DSNs themselves, which are never answered."""
    if head is None or head.kind != "message":
        return None
    return Original(
        head.order_id or "",
        head.alias,
        head.subject,
        head.created_at,
        sender_of(head.from_header),
        automatic=not head.mail_from or _automatic(head.head),
        message_id=_one_id(head.message_id),
        locale=head.locale or "en",
    )


def _one_id(value: str) -> str:
    """``<id>`` when the header held exactly one well-formed id, else empty."""
    ids = re.findall(r"<[^<>\s]+@[^<>\s]+>", value or "")
    return ids[0] if len(ids) == 1 else ""


def _automatic(raw: bytes) -> bool:
    """Whether the original was itself automatic mail (out-of-office, list, bounce)."""
    head = re.split(rb"\r?\n\r?\n", raw, maxsplit=1)[0]  # only the header section
    return is_automatic(BytesHeaderParser(policy=compat32).parsebytes(head))


def compose_notice(
    original: Original, *, reason: str, domain: str, marketplace: str, now: datetime
) -> bytes:
    t = notices_i18n.text_for(original.locale)
    reason = notices_i18n.localized_reason(reason, original.locale)
    msg = EmailMessage(policy=SMTP)
    msg["From"] = formataddr(
        (t.sender_name.format(marketplace=marketplace), f"mailer-daemon@{domain}")
    )
    msg["To"] = original.sender
    msg["Subject"] = t.subject.format(order=original.order_id)
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = f"<{new_message_id(domain)}>"
    msg["Auto-Submitted"] = "auto-replied"
    if original.message_id:
        msg["In-Reply-To"] = original.message_id
        msg["References"] = original.message_id
    subject = " ".join(original.subject.split())[:200] or t.no_subject
    # Short lines keep an ASCII notice in 7bit: quoted-printable soft breaks would split
    # words (and addresses) across lines for anyone scanning the bytes.
    closing = textwrap.fill(t.closing.format(marketplace=marketplace), width=72)
    width = max(len(t.to), len(t.subject_label), len(t.sent)) + 1
    msg.set_content(
        t.intro.format(order=original.order_id) + "\n\n"
        f"  {t.to + ':':{width}} {original.alias}\n"
        f"  {t.subject_label + ':':{width}} {subject}\n"
        f"  {t.sent + ':':{width}} {format_datetime(original.sent_at)}\n\n"
        + textwrap.fill(f"{t.reason_label}: {reason}.", width=72)
        + f"\n\n{closing}\n"
    )
    return msg.as_bytes()


def notice_entry(
    original: Original, *, reason: str, domain: str, marketplace: str, now: datetime
) -> Entry | None:
    """Archive record + queued delivery for a notice; None when there is no one to tell,
    or when the original was automatic mail (answering it could start a loop)."""
    if not original.sender or original.automatic:
        return None
    body = compose_notice(original, reason=reason, domain=domain, marketplace=marketplace, now=now)
    record = Record(
        created_at=now,
        verdict=Verdict.DELIVER,
        kind="notice",
        original=body,
        sha256=hashlib.sha256(body).hexdigest(),
        delivered=body,
        order_id=original.order_id,
        direction=Direction.NOTICE,
        alias=original.alias,
        rcpt=original.sender,
        from_header=f"mailer-daemon@{domain}",
        subject=notices_i18n.text_for(original.locale).subject.format(order=original.order_id),
        reason=reason,
        reason_code=ReasonCode.NOTICE,
    )
    return Entry(
        record, Outgoing(mail_from="", rcpt=original.sender, token=new_token(), notify=False)
    )
