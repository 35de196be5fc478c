"""The ``social_handle`` rule: social network handles and profile links are removed.

``@handles``, profile links and ids introduced by a social-network cue.
"""

from __future__ import annotations

from relay.policy.rules.base import Recorded


class SocialHandle(Recorded):
    kind = "social_handle"
    name = "link.social"
    description = "social network handles and profile links are removed"
