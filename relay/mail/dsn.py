"""Reading delivery status notifications (RFC 3464, RFC 6533) and common plain bounces.

Mail to one of our signed return paths is a report about a delivery we made. We need, per
recipient, the action (failed, delayed, delivered, relayed, expanded), the status code and
the diagnostic. Some servers (qmail, older Exim, Exchange "Undeliverable:") still send plain
text; those are recognised heuristically and reported as failed (or delayed when they say
so). ``parse_dsn`` never raises: hostile or broken input yields None.
"""

from __future__ import annotations

import email
import email.message
import email.policy
import re
from dataclasses import dataclass, field

ACTIONS = ("failed", "delayed", "delivered", "relayed", "expanded")
_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_REPLY = re.compile(r"\b([45])\d\d\b")
_ADDR = re.compile(r"[^\s<>()\"',;:]+@[^\s<>()\"',;:]+\.[A-Za-z0-9-]+")
_MAX_TEXT = 256 * 1024
_MAX_DIAG = 1000


@dataclass(frozen=True)
class DsnRecipient:
    """One per-recipient block. ``final_recipient`` is the remote address: never show it."""

    action: str
    status: str
    diagnostic: str = ""
    final_recipient: str = ""
    original_recipient: str = ""
    remote_mta: str = ""

    @property
    def safe_diagnostic(self) -> str:
        """The diagnostic with every address replaced, fit for a notice to the sender."""
        return scrub(self.diagnostic)


@dataclass(frozen=True)
class DsnReport:
    """A parsed report; ``standard`` is False for heuristically read plain-text bounces."""

    recipients: tuple[DsnRecipient, ...]
    reporting_mta: str = ""
    envelope_id: str = ""
    standard: bool = True
    fields: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def failed(self) -> bool:
        return any(r.action == "failed" for r in self.recipients)


def scrub(text: str) -> str:
    """Replace anything that looks like an email address with ``<address>``."""
    return _ADDR.sub("<address>", text)


def _value(v: str) -> str:
    """Drop the RFC 3464 type prefix (``rfc822;``, ``smtp;``, ``dns;``) and unfold."""
    v = " ".join(v.split())
    if ";" in v:
        kind, _, rest = v.partition(";")
        if re.fullmatch(r"[A-Za-z0-9-]+", kind.strip()):
            v = rest.strip()
    return v


def _fields(block: str) -> dict[str, str]:
    out: dict[str, str] = {}
    last = ""
    for line in block.splitlines():
        if line[:1] in (" ", "\t") and last:
            out[last] += " " + line.strip()
            continue
        name, sep, value = line.partition(":")
        if sep and re.fullmatch(r"[A-Za-z0-9-]+", name.strip()):
            last = name.strip().lower()
            out.setdefault(last, value.strip())
    return out


def _status(text: str) -> str:
    m = _STATUS.search(text)
    return ".".join(m.groups()) if m else ""


def _recipient(f: dict[str, str]) -> DsnRecipient | None:
    status = _status(f.get("status", ""))
    action = f.get("action", "").strip().lower().split(" ")[0]
    if action not in ACTIONS:
        action = {"5": "failed", "4": "delayed", "2": "delivered"}.get(status[:1], "")
    if not action:
        return None
    diagnostic = _value(f.get("diagnostic-code", ""))[:_MAX_DIAG]
    if not status:
        status = _status(diagnostic) or {"failed": "5.0.0", "delayed": "4.0.0"}.get(action, "2.0.0")
    return DsnRecipient(
        action=action,
        status=status,
        diagnostic=diagnostic,
        final_recipient=_value(f.get("final-recipient", "")),
        original_recipient=_value(f.get("original-recipient", "")),
        remote_mta=_value(f.get("remote-mta", "")),
    )


def _status_part(msg: email.message.Message) -> str | None:
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype in ("message/delivery-status", "message/global-delivery-status"):
            payload = part.get_payload()
            if isinstance(payload, list):  # the parser split the blocks into messages
                return "\n\n".join(
                    "\n".join(f"{k}: {v}" for k, v in p.items())
                    for p in payload
                    if isinstance(p, email.message.Message)
                )
            if isinstance(payload, str):
                raw = part.get_payload(decode=True)
                return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else payload
    return None


def _standard(msg: email.message.Message) -> DsnReport | None:
    text = _status_part(msg)
    if text is None:
        return None
    blocks = [b for b in re.split(r"\r?\n[ \t]*\r?\n", text.strip()) if b.strip()]
    if not blocks:
        return None
    per_message = _fields(blocks[0])
    recipients = [r for b in blocks[1:] if (r := _recipient(_fields(b))) is not None]
    if not recipients and "action" in per_message:  # no per-message block at all
        r = _recipient(per_message)
        recipients = [r] if r else []
    if not recipients:
        return None
    return DsnReport(
        recipients=tuple(recipients),
        reporting_mta=_value(per_message.get("reporting-mta", "")),
        envelope_id=_value(per_message.get("original-envelope-id", "")),
        fields=per_message,
    )


_FAILED_MARKERS = (
    "this is the qmail-send program",  # qmail
    "could not be delivered to one or more of its recipients",  # Exim
    "delivery to the following recipient",  # Exchange, Gmail, Lotus
    "delivery has failed to these recipients",  # Exchange
    "undeliverable",
    "delivery status notification (failure)",
    "mail delivery failed",
    "returned mail: see transcript",  # sendmail
    "undelivered mail returned to sender",  # Postfix subject
    "user unknown",
    "mailbox unavailable",
    "permanent error",
)
_DELAY_MARKERS = (
    "has not yet been delivered",
    "message delayed",
    "delivery status notification (delay)",
    "will continue to try",
    "still trying",
)


def _plain_text(msg: email.message.Message) -> str:
    chunks: list[str] = []
    size = 0
    for part in msg.walk():
        if part.get_content_maintype() != "text" or size > _MAX_TEXT:
            continue
        raw = part.get_payload(decode=True)
        if isinstance(raw, bytes):
            text = raw[:_MAX_TEXT].decode(part.get_content_charset() or "utf-8", "replace")
            chunks.append(text)
            size += len(text)
    return "\n".join(chunks)


def _heuristic(msg: email.message.Message) -> DsnReport | None:
    subject = str(msg.get("subject", "")).lower()
    sender = str(msg.get("from", "")).lower()
    body = _plain_text(msg)
    low = body.lower()
    daemon = any(w in sender for w in ("mailer-daemon", "postmaster", "mail delivery"))
    delayed = any(m in subject or m in low for m in _DELAY_MARKERS)
    failed = any(m in subject or m in low for m in _FAILED_MARKERS)
    # Words like "undeliverable" also turn up in people's mail ("the parcel was
    # undeliverable"): without a mail-system sender they prove nothing.
    if not (failed or delayed) or not daemon:
        return None
    action = "delayed" if delayed and not failed else "failed"
    status = _status(body)
    if not status or status[0] != ("4" if action == "delayed" else "5"):
        reply = _REPLY.search(body)
        status = f"{reply.group(1)}.0.0" if reply else ("4.0.0" if action == "delayed" else "5.0.0")
    diag = ""
    for line in body.splitlines():
        if _STATUS.search(line) or _REPLY.search(line):
            diag = " ".join(line.split())[:_MAX_DIAG]
            break
    final = ""
    m = re.search(r"^<([^>\s]+@[^>\s]+)>:", body, re.M)  # qmail lists "<addr>:"
    if m:
        final = m.group(1)
    return DsnReport(
        recipients=(DsnRecipient(action=action, status=status, diagnostic=diag,
                                 final_recipient=final),),
        standard=False,
    )  # fmt: skip


def parse_dsn(raw: bytes) -> DsnReport | None:
    """Parse a bounce; None when ``raw`` is not recognisably a delivery report."""
    try:
        msg = email.message_from_bytes(raw, policy=email.policy.compat32)
        return _standard(msg) or _heuristic(msg)
    except Exception:  # hostile input must never crash the SMTP session
        return None
