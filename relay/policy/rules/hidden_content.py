"""The ``hidden_content`` rule: text hidden from the reader by CSS is removed.

Elements hidden by inline CSS, a ``<style>`` rule, the ``hidden`` attribute or same-
colour text; what they hide is judged by the token rules too.
"""

from __future__ import annotations

from relay.policy.rules.base import Recorded


class HiddenContent(Recorded):
    kind = "hidden_content"
    name = "html.hidden"
    description = "text hidden from the reader by CSS is removed"
