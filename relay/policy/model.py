"""The policy contract: what the pipeline hands the engine and what it gets back.

These values cross the boundary between the SMTP pipeline and the content policy, so they
are frozen and plain: the pipeline never needs to know how a rule works, only its verdict.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Direction = Literal["buyer-to-seller", "seller-to-buyer"]
Action = Literal["deliver", "redact", "hold", "reject"]
FindingAction = Literal["allow", "redact", "hold", "reject"]

_STRENGTH = {"deliver": 0, "allow": 0, "redact": 1, "hold": 2, "reject": 3}


@dataclass(frozen=True)
class PolicyContext:
    """What the engine knows about a message besides its bytes (see policy-spec.md)."""

    direction: Direction
    order_id: str
    buyer_locale: str = "en-US"
    thread: Literal["reply", "proactive"] = "proactive"
    prior_review_requests: int = 0
    days_since_delivery: int | None = None
    relay_domain: str = "relay.example"


@dataclass(frozen=True)
class Finding:
    kind: str
    rule: str
    action: FindingAction
    where: str
    excerpt: str = ""

    def as_dict(self) -> dict[str, str]:
        return {
            "kind": self.kind,
            "rule": self.rule,
            "action": self.action,
            "where": self.where,
            "excerpt": self.excerpt,
        }


@dataclass(frozen=True)
class Verdict:
    """``message`` is the message to forward: the original bytes for ``deliver``, the
    redacted bytes for ``redact``, ``None`` for ``reject``; for ``hold`` the bytes that
    would be forwarded once ops release it. ``reason`` is the plain, non-echoing sentence
    the sender sees in the SMTP reply when rejected (for ``hold``: why it waits).
    ``timings`` are milliseconds spent reading attachments (``doc_ms``, ``ocr_ms``)."""

    action: Action
    findings: tuple[Finding, ...] = field(default_factory=tuple)
    message: bytes | None = None
    reason: str = ""
    timings: dict[str, float] = field(default_factory=dict, compare=False)

    @property
    def reject_findings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.action == "reject")


def strongest(actions: list[str]) -> Action:
    """reject > hold > redact > deliver, as the spec orders them."""
    best = max((_STRENGTH[a] for a in actions), default=0)
    return ("deliver", "redact", "hold", "reject")[best]
