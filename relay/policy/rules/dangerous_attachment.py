"""The ``dangerous_attachment`` rule: executables, scripts, double extensions and files
whose type lies are not allowed.

The bytes are in ``[attachments] dangerous``, the name ends in an executable extension,
or the declared type contradicts the bytes.
"""

from __future__ import annotations

from relay.policy.rules.base import Recorded


class DangerousAttachment(Recorded):
    kind = "dangerous_attachment"
    name = "dangerous_attachment"
    description = (
        "executables, scripts, double extensions and files whose type lies are "
        "not allowed"
    )
    default_action = "reject"
