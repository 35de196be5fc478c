"""The ``deceptive_link`` rule: links whose text and target disagree, or that imitate a
known domain, are not allowed.

A link label showing one host while the target is another, or a host imitating a known
domain (homoglyphs, the known domain worn as a subdomain).
"""

from __future__ import annotations

from relay.policy.rules.base import Recorded


class DeceptiveLink(Recorded):
    kind = "deceptive_link"
    name = "deceptive_link"
    description = (
        "links whose text and target disagree, or that imitate a known domain, "
        "are not allowed"
    )
    default_action = "reject"
