"""The ``important_tag_misuse`` rule (a message kind): ``[Important]`` in the subject of a
message with nothing critical in it.
"""

from __future__ import annotations

from relay.policy.detect.view import MessageFinding, MessageView
from relay.policy.rules.base import MessageRule
from relay.policy.rules.critical import critical_category


class ImportantTagMisuse(MessageRule):
    """``[Important]`` in the subject of a message with nothing critical in it."""

    kind = "important_tag_misuse"
    name = "important_tag_misuse"
    description = ("[Important] is only for messages critical to the order")

    def judge(self, view: MessageView) -> list[MessageFinding]:
        tag = self.hit("important_tag", view.subject)
        if not tag or critical_category(self.lex, view.text):  # relay.policy.critical
            return []
        return [MessageFinding(self.kind, tag)]
