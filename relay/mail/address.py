"""Addresses as providers compare them: the comparison key of a mailbox
(``canonical_address``) and a domain's A-label form (``a_label``).

Kept apart from ``relay.authn`` (which re-exports them from ``relay.authn.fromaddr``) so a
command that only looks a party up, such as ``relay archive search``, does not load the
DNS and DKIM stack that importing the ``relay.authn`` package brings.
"""

from __future__ import annotations

import unicodedata

from relay.core.errors import FromError as FromError


def _visible(text: str) -> bool:
    """No undecodable byte, control, format (zero-width, bidi), private-use, unassigned or
    non-ASCII space character: what remains looks like what it is."""
    return all(
        ch.isascii() or (ch != "\ufffd" and unicodedata.category(ch)[0] not in "CZ") for ch in text
    )


_CONFUSABLE = ({"LATIN", "CYRILLIC"}, {"LATIN", "GREEK"}, {"CYRILLIC", "GREEK"})


def _mixed_script(label: str) -> bool:
    """Latin, Cyrillic and Greek letters mixed in one label or local part: the homograph
    class (``shоp`` with a Cyrillic o). Browsers refuse to show such names; so do we."""
    scripts = {
        unicodedata.name(ch, "?").split()[0] for ch in label if ch.isalpha()
    }  # fmt: skip
    return any(pair <= scripts for pair in _CONFUSABLE)


def a_label(domain: str) -> str:
    """The lower-case A-label form of a domain (UTS 46 mapping, so ``MÜLLER.example`` and
    ``xn--mller-kva.example`` agree); raises FromError when it is not a valid IDN."""
    domain = domain.rstrip(".")
    if domain.isascii() and "xn--" not in domain.lower():
        return domain.lower()
    if not _visible(domain):
        raise FromError("unsupported domain in From")
    import idna  # only for a non-ASCII domain: the uts46 tables cost start-up time

    try:
        ace = idna.encode(domain, uts46=True).decode("ascii").lower()
        unicode_form = idna.decode(ace)
    except (idna.IDNAError, UnicodeError, ValueError):
        raise FromError("unsupported domain in From") from None
    if any(_mixed_script(label) for label in unicode_form.split(".")):
        raise FromError("unsupported domain in From")
    return ace


def canonical_address(address: str) -> str:
    """The comparison key of an address: NFC, lower-case local part, A-label domain. Total:
    a domain that is no valid IDN keeps its lower-case spelling (and matches nothing
    valid)."""
    local, _, domain = address.strip().rpartition("@")
    try:
        domain = a_label(domain)
    except FromError:
        domain = domain.lower().rstrip(".")
    return f"{unicodedata.normalize('NFC', local).lower()}@{domain}"
