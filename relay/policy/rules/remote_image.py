"""The ``remote_image`` rule: remote images are removed because they reveal when and where
a message is read.

Any other image or media loaded from a remote address when the message is opened.
"""

from __future__ import annotations

from relay.policy.rules.base import Recorded


class RemoteImage(Recorded):
    kind = "remote_image"
    name = "html.remote_image"
    description = "remote images are removed because they reveal when and where a message is read"
