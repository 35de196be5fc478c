"""The ``promotional`` rule (a message kind): one strong cue (a coupon code, "20% off", an
upsell) or two distinct weak ones.
"""

from __future__ import annotations

from relay.policy import intents
from relay.policy.detect.view import MessageFinding, MessageView
from relay.policy.rules.base import MessageRule


class Promotional(MessageRule):
    """One strong cue (a coupon code, "20% off", an upsell) or two distinct weak ones."""

    kind = "promotional"
    name = "promotional"
    description = ("promotions, coupons and upsells are not allowed in order messages")

    def judge(self, view: MessageView) -> list[MessageFinding]:
        ex = self.hit("promotional", view.text) or self.hit(
            "upsell", view.text[:intents.MAX_CHARS])
        if ex:
            return [MessageFinding(self.kind, ex)]
        weak = {m.group().lower() for m in self.lex.finditer("promotional_weak", view.text)}
        if len(weak) >= 2:
            return [MessageFinding(self.kind, ", ".join(sorted(weak))[:80])]
        return []
