"""The ``critical`` rule: a seller message that matters to the order whatever the buyer chose.

Four categories, each with its own lexicon key in ``policies/lexicons`` (all languages
merged): ``critical_cancellation`` (the order is cancelled), ``critical_delivery`` (it
cannot be delivered, the address is incomplete, the parcel is lost, damaged, delayed or
held at customs), ``critical_return`` (a return or refund that needs the buyer's action)
and ``critical_safety`` (a recall or safety notice). A finding is recorded with action
``allow`` and never refuses anything; it is read by two others:

- relay.ratelimits lets a critical message through a buyer's opt-out;
- ``important_tag_misuse`` allows ``[Important]`` in the subject only when this rule finds
  something (the spec: "[Important] only on critical messages").

It judges the writer's own words (subject and body with quotes cut), like every message
rule, so quoting the buyer's "is my order cancelled?" does not make a reply critical.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from relay.policy.detect.view import MessageFinding, MessageView
from relay.policy.rules.base import MessageRule

if TYPE_CHECKING:
    from relay.policy.config import Lexicon

CATEGORIES = ("cancellation", "delivery", "return", "safety")


def critical_category(lex: Lexicon, text: str) -> tuple[str, str] | None:
    """(category, matched words) of the first critical category in ``text``, else None."""
    for category in CATEGORIES:
        m = lex.search(f"critical_{category}", text)
        if m:
            return category, m.group()
    return None


class Critical(MessageRule):
    """Recorded (action ``allow``), never refusing: read by the opt-out and by
    ``important_tag_misuse``."""

    kind = "critical"
    name = "critical"
    description = ("critical to the order (cancellation, a delivery or address problem, a "
                   "return or refund that needs the buyer, a safety notice): reaches a buyer "
                   "who opted out")
    default_action = "allow"

    def judge(self, view: MessageView) -> list[MessageFinding]:
        found = critical_category(self.lex, view.text)
        if found is None:
            return []
        category, words = found
        return [MessageFinding(self.kind, f"{category}: {words}"[:80], allowed=True)]
