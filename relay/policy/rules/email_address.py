"""The ``email_address`` rule: email addresses other than the relay's aliases are removed.

Found in every text span (plain, spelled-out ``at``/``dot`` forms in each lexicon
language, ``mailto:`` links); the relay's own aliases are not findings.
"""

from __future__ import annotations

from relay.policy.rules.base import Recorded


class EmailAddress(Recorded):
    kind = "email_address"
    name = "contact.email"
    description = "email addresses other than the relay's aliases are removed"
