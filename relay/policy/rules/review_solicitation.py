"""The ``review_solicitation`` rule (a message kind): positive-only, selective, edit-your-
review, repeat or out-of-window requests.
"""

from __future__ import annotations

from relay.policy.detect.view import MessageFinding, MessageView, sentences
from relay.policy.rules.base import MessageRule


class ReviewSolicitation(MessageRule):
    """Positive-only, selective, edit-your-review, repeat or out-of-window requests."""

    kind = "review_solicitation"
    name = "review_solicitation"
    description = (
        "review requests may not ask for positive or changed reviews and are limited to "
        "one neutral request 5 to 30 days after delivery"
    )

    def judge(self, view: MessageView) -> list[MessageFinding]:
        text, ctx = view.text, view.ctx
        if not view.reviews:
            return []
        asks = [s for s in sentences(text) if self.lex.search("review_request", s)
                or self.lex.search("review_edit", s)]
        positive = self.hit("review_positive", text)
        acts = view.acts
        gating = (acts.near("happy_condition", "review_target") is not None
                  or (acts.has("review_target") and acts.has("contact_first")
                      and (acts.has("unhappy_condition") or acts.has("happy_condition"))))
        if not asks and not positive and not self.hit("review_selective", text) and not gating:
            return []
        rv = self.policy.file.review
        acts = view.acts
        reason = None
        if self.hit("review_edit", text):
            reason = "asks to change a review"
        elif positive:
            reason = "asks for a positive review"
        elif self.hit("review_selective", text) and self.hit("review_word", text):
            reason = "asks only satisfied buyers"
        elif acts.near("happy_condition", "review_target") is not None:
            reason = "asks only satisfied buyers"
        elif (acts.near("unhappy_condition", "contact_first", 0) is not None
              or (acts.has("contact_first") and acts.has("happy_condition"))):
            reason = "asks unhappy buyers to write first"
        elif asks and ctx.prior_review_requests >= rv.max_requests:
            reason = "repeat review request"
        elif asks and ctx.days_since_delivery is not None and not (
                rv.window_min_days <= ctx.days_since_delivery <= rv.window_max_days):
            reason = "outside the review window"
        if reason:
            return [MessageFinding(self.kind, reason)]
        # The one allowed request is still recorded: the relay counts delivered requests
        # per order (prior_review_requests) from these findings in the archive.
        return [MessageFinding(self.kind, "neutral review request", allowed=True)] if asks else []
