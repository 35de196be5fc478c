"""The ``attachment_too_large`` rule: attachments may not exceed the size limit in one
message.

Decoded attachment bytes of the whole message against ``[limits] max_attachment_bytes``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from relay.policy.rules.base import Record, Rule

if TYPE_CHECKING:
    from relay.policy.detect.document import Document


class AttachmentTooLarge(Rule):
    kind = "attachment_too_large"
    name = "attachment_too_large"
    description = "attachments may not exceed the size limit in one message"
    default_action = "reject"

    def check(self, doc: Document) -> list[Record]:
        total = doc.attachment_bytes
        if total <= self.policy.file.limits.max_attachment_bytes:
            return []
        return [Record(self.kind, "attachment:*", f"{total} bytes", seq=doc.attachments_seq - 0.5)]
