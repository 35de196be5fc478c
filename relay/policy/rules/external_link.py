"""The ``external_link`` rule: links off the marketplace are removed; https links needed
for the order are allowed, http links never.

Any registrable domain under the Public Suffix List counts, with or without a scheme;
https to the marketplace, a carrier, an allow-listed domain or carrying the order id is
allowed.
"""

from __future__ import annotations

from relay.policy.rules.base import Recorded


class ExternalLink(Recorded):
    kind = "external_link"
    name = "link.external"
    description = (
        "links off the marketplace are removed; https links needed for the "
        "order are allowed, http links never"
    )
