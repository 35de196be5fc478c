"""The ``phone_number`` rule: phone numbers are removed, except carrier, manufacturer and
warranty service lines.

Candidates from one cheap pattern, confirmed by libphonenumber for the buyer's region
and the policy's extra regions; ids, dates and amounts are masked first; service lines
named as such are recorded as allowed.
"""

from __future__ import annotations

from relay.policy.rules.base import Recorded


class PhoneNumber(Recorded):
    kind = "phone_number"
    name = "contact.phone"
    description = (
        "phone numbers are removed, except carrier, manufacturer and warranty "
        "service lines"
    )
