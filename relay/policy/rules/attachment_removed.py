"""The ``attachment_removed`` rule: attachments of a kind not allowed (animations, contact
cards ...) are removed.

The real type (from the bytes) is outside ``[attachments] allowed``, a seller's
decorative image, an image over the pixel budget, or an attachment whose text carries a
contact detail; ``attachment.unreadable`` holds what could not be read.
"""

from __future__ import annotations

from relay.policy.rules.base import Recorded


class AttachmentRemoved(Recorded):
    kind = "attachment_removed"
    name = "attachment.removed"
    description = "attachments of a kind not allowed (animations, contact cards ...) are removed"
