"""The ``review_incentive`` rule (a message kind): a review is asked for, and something of
value is offered in a sentence about it.
"""

from __future__ import annotations

from relay.policy.detect.view import MessageFinding, MessageView
from relay.policy.rules.base import MessageRule


class ReviewIncentive(MessageRule):
    """A review is asked for, and something of value is offered in a sentence about it."""

    kind = "review_incentive"
    name = "review_incentive"
    description = ("money, refunds, gifts or products may not be offered for a review")

    def judge(self, view: MessageView) -> list[MessageFinding]:
        if not view.reviews:
            return []
        acts = view.acts
        asks = (acts.has("review_request") or acts.has("review_positive")
                or acts.has("review_edit") or acts.near("happy_condition", "review_target")
                is not None)
        if not asks:
            return []
        for i, slots in enumerate(acts.slots):
            if "review_incentive" in slots and (
                    "review_target" in slots or "review_edit" in slots):
                return [MessageFinding(self.kind, acts.sentences[i][:80])]
        # a refund or gift in one sentence, "then change your rating" in the next
        near = acts.near("review_incentive", "review_edit")
        if near is not None:
            return [MessageFinding(self.kind, acts.sentences[near][:80])]
        return []
