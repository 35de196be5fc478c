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

from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from relay.policy.config import Lexicon, Policy
    from relay.policy.messages import MessageFinding, MessageView

CATEGORIES = ("cancellation", "delivery", "return", "safety")


def critical_category(lex: Lexicon, text: str) -> tuple[str, str] | None:
    """(category, matched words) of the first critical category in ``text``, else None."""
    for category in CATEGORIES:
        m = lex.search(f"critical_{category}", text)
        if m:
            return category, m.group()
    return None


class Critical:
    """A message rule (relay.policy.messages.MessageRule's shape) in a file of its own."""

    kind: ClassVar[str] = "critical"
    seller_only: ClassVar[bool] = True

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.lex = policy.lexicon

    def check(self, view: MessageView) -> list[MessageFinding]:
        from relay.policy.messages import MessageFinding

        found = critical_category(self.lex, view.text)
        if found is None:
            return []
        category, words = found
        return [MessageFinding(self.kind, f"{category}: {words}"[:80], allowed=True)]
