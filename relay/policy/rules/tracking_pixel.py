"""The ``tracking_pixel`` rule: open-tracking pixels and CSS beacons are removed.

Tiny, hidden or tracker-hosted remote images, CSS beacons and remote loads of frames and
stylesheets, found on the parsed HTML tree.
"""

from __future__ import annotations

from relay.policy.rules.base import Recorded


class TrackingPixel(Recorded):
    kind = "tracking_pixel"
    name = "html.tracking_pixel"
    description = "open-tracking pixels and CSS beacons are removed"
