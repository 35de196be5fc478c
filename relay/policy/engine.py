"""The engine (first cut): email addresses only; grows into the full rule set."""

from __future__ import annotations

import email
import email.policy
import pathlib
import re

from relay.policy.model import Finding, PolicyContext, Verdict, strongest


class PolicyError(ValueError):
    """A bad policy file; the message names the offending key."""


_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")


class PolicyEngine:
    """Judges messages; immutable after load so it is safe to share between threads."""

    def __init__(self) -> None:
        self._rules = [{"name": "contact.email", "description": "email addresses", "action": "redact"}]

    @classmethod
    def load(cls, path: pathlib.Path | None = None) -> PolicyEngine:
        return cls()

    def describe(self) -> list[dict]:
        return list(self._rules)

    def evaluate(self, raw: bytes, ctx: PolicyContext) -> Verdict:
        try:
            msg = email.message_from_bytes(raw, policy=email.policy.default)
            findings = []
            for part in msg.walk():
                if part.get_content_maintype() == "text":
                    text = part.get_content()
                    for m in _EMAIL.finditer(text):
                        if not m.group().lower().endswith("@" + ctx.relay_domain):
                            findings.append(Finding("email_address", "contact.email", "redact",
                                                    "body.text", m.group()))
            action = strongest([f.action for f in findings])
            if action == "reject":
                return Verdict("reject", tuple(findings), None, "Message refused")
            return Verdict(action, tuple(findings), raw, "")
        except Exception:  # noqa: BLE001
            return Verdict("reject", (), None, "Message refused: it could not be parsed")
