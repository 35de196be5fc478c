"""DKIM replay defence for mail into an alias (RFC 6376 §8.6).

A genuine signature of the seller's domain proves the seller's server sent *some* message,
not that it was sent to this alias: anyone holding one signed message could re-send it.
"""

from __future__ import annotations

import dataclasses
import email.utils
from collections.abc import Collection

from relay.authn.dkimverify import DkimResult
from relay.authn.fromaddr import header_values

REPLAYED = "signed for other recipients"
UNSIGNED_TO = "To not signed and no aligned SPF pass"


def replay_check(
    raw: bytes, results: tuple[DkimResult, ...], recipients: Collection[str], spf_ok: bool
) -> tuple[DkimResult, ...]:
    """Downgrade DKIM passes that a stranger could be replaying (RFC 6376 §8.6).

    * To/Cc do not name any envelope recipient: replayed, whatever was signed.
    * They do, but the signature does not cover To (and Cc when present), as with
      Microsoft 365 signatures: the visible addressees could have been swapped, so the pass
      only counts together with an aligned SPF pass (the message left the sender's own
      infrastructure).
    """
    named = {
        addr.lower()
        for _, addr in email.utils.getaddresses(
            header_values(raw, b"to") + header_values(raw, b"cc")
        )
    }
    wanted = {r.strip().strip("<>").lower() for r in recipients}
    out = []
    for r in results:
        if r.result == "pass" and not named & wanted:
            r = dataclasses.replace(r, result="fail", reason=REPLAYED)
        elif r.result == "pass" and not r.signs_to and not spf_ok:
            r = dataclasses.replace(r, result="fail", reason=UNSIGNED_TO)
        out.append(r)
    return tuple(out)
