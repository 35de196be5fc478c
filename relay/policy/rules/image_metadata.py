"""The ``image_metadata`` rule: GPS and device metadata are stripped from images.

EXIF/XMP location and device data in image attachments (relay.policy.images strips it).
"""

from __future__ import annotations

from relay.policy.rules.base import Recorded


class ImageMetadata(Recorded):
    kind = "image_metadata"
    name = "attachment.metadata"
    description = "GPS and device metadata are stripped from images"
