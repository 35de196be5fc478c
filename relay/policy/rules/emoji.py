"""The ``emoji`` rule: emoji are removed from seller messages.

Pictographs shown as emoji (not (c), (R) or TM signs).
"""

from __future__ import annotations

from relay.policy.rules.base import Recorded


class Emoji(Recorded):
    kind = "emoji"
    name = "text.emoji"
    description = "emoji are removed from seller messages"
    scope = "seller-to-buyer"
