"""The ``opt_out_link`` rule: unsubscribe and preference-centre links and footers are removed.

Unsubscribe footers (the whole sentence) and links to preference centres.
"""

from __future__ import annotations

from relay.policy.rules.base import Recorded


class OptOutLink(Recorded):
    kind = "opt_out_link"
    name = "link.opt_out"
    description = "unsubscribe and preference-centre links and footers are removed"
