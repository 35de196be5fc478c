"""The ``off_platform`` rule (a message kind): paying, ordering or talking outside the
marketplace (binds buyers too).
"""

from __future__ import annotations

from relay.policy.detect.view import MessageFinding, MessageView
from relay.policy.rules.base import BOTH, MessageRule


class OffPlatform(MessageRule):
    """Paying, ordering or talking outside the marketplace (binds buyers too)."""

    kind = "off_platform"
    name = "off_platform"
    description = ("payments, orders and conversations must stay on the marketplace")
    scope = BOTH

    def judge(self, view: MessageView) -> list[MessageFinding]:
        ex = self.hit("off_platform", view.text)
        return [MessageFinding(self.kind, ex)] if ex else []
