"""The ``shipping_confirmation`` rule (a message kind): a proactive order or shipping
confirmation (the marketplace already sends one).
"""

from __future__ import annotations

from relay.policy.detect.view import MessageFinding, MessageView
from relay.policy.rules.base import MessageRule


class ShippingConfirmation(MessageRule):
    """A proactive order or shipping confirmation (the marketplace already sends one)."""

    kind = "shipping_confirmation"
    name = "shipping_confirmation"
    description = ("order and shipping confirmations are already sent by the marketplace")

    def judge(self, view: MessageView) -> list[MessageFinding]:
        if view.ctx.thread != "proactive":
            return []
        ex = self.hit("shipping_confirmation", view.body)
        if ex and not self.hit("critical", view.body):
            return [MessageFinding(self.kind, ex)]
        return []
