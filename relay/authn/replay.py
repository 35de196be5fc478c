"""DKIM replay defence for mail into an alias (RFC 6376 §8.6).

A genuine signature of the seller's domain proves the seller's server sent *some* message,
not that it was sent to this alias: anyone holding one signed message could re-send it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from typing import TYPE_CHECKING

from relay.authn.dkimverify import DkimResult
from relay.authn.fromaddr import canonical_address, header_values, mailboxes

if TYPE_CHECKING:
    from relay.core.values import Message

REPLAYED = "signed for other recipients"
UNSIGNED_TO = "To not signed and no aligned SPF pass"


def _named(values: list[str]) -> set[str]:
    """Address keys named unambiguously (``relay.authn.fromaddr.mailboxes``): an address
    a reader sees as a display name never counts as naming the alias."""
    return {canonical_address(box) for value in values for box in mailboxes(value)}


def replay_check(
    raw: bytes,
    results: tuple[DkimResult, ...],
    recipients: Collection[str],
    spf_ok: bool,
    *,
    message: Message | None = None,
) -> tuple[DkimResult, ...]:
    """Downgrade DKIM passes that a stranger could be replaying (RFC 6376 §8.6).

    Only what a signature covers counts for it:

    * To or Cc given more than once: DKIM covers the bottom-most copy, readers the top-most,
      so no copy can be trusted: replayed. (Intake refuses such messages anyway.)
    * The alias is named in a To/Cc field the signature's ``h=`` covers: a pass.
    * It is named only in a field the signature does not cover (Microsoft 365 signs
      neither): the addressees could have been swapped, so the pass only counts together
      with an aligned SPF pass (the message left the sender's own infrastructure).
    * It is not named at all: replayed, whatever was signed.

    ``message`` (the intake's reading of ``raw``) gives the To/Cc values without reading
    the header section again.
    """
    if message is not None:
        to, cc = message.header_values("to"), message.header_values("cc")
    else:
        to, cc = header_values(raw, b"to"), header_values(raw, b"cc")
    doubled = len(to) > 1 or len(cc) > 1
    wanted = {canonical_address(r.strip().strip("<>")) for r in recipients}
    named_to, named_cc = _named(to), _named(cc)
    out = []
    for r in results:
        if r.result == "pass":
            covered = (named_to if r.signs_to else set()) | (named_cc if r.signs_cc else set())
            if doubled or not (named_to | named_cc) & wanted:
                r = dataclasses.replace(r, result="fail", reason=REPLAYED)
            elif not covered & wanted and not spf_ok:
                r = dataclasses.replace(r, result="fail", reason=UNSIGNED_TO)
        out.append(r)
    return tuple(out)
