"""Strict reading of the From header: exactly one plain mailbox or nothing.

Why so strict: the decision "is this the seller?" rests on the From address, and mail
parsers disagree on odd input (Composition Kills, Mailsploit, CPython gh-102988). We read
the raw header bytes ourselves and accept only the forms real mail clients produce:

* ``local@domain``
* ``Display Name <local@domain>`` (atoms and RFC 2047 encoded-words in the display name)
* ``"Quoted Display" <local@domain>``

Addresses may be international (RFC 6531): a UTF-8 local part and a U-label domain are
accepted when well formed, the domain is returned as its A-label. Anything that could
look like one address and be another is refused: undecodable bytes (U+FFFD), invisible
or format characters (zero-width, bidi controls), non-ASCII spaces, invalid IDNA labels.

Refused: several From fields, several mailboxes, groups, comments, route addresses, quoted
or encoded-word local parts, control characters, an unquoted ``@`` or ``<`` in the display
name, and anything on which ``email.utils`` disagrees with us.

Comparing addresses (``same_address``) follows the big providers: the domain IDNA- and
case-normalised, the local part NFC and case-insensitive. The local part only says which
party claims to write; the proof is a DKIM signature of the domain, which the domain's own
servers give any of their mailboxes anyway, so case-folding it opens nothing.
"""

from __future__ import annotations

import email.utils
import re
import unicodedata

from relay.mail.address import FromError as FromError
from relay.mail.address import _mixed_script, _visible
from relay.mail.address import a_label as a_label
from relay.mail.address import canonical_address as canonical_address

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_LOCAL = re.compile(rf"^{_ATEXT}+(?:\.{_ATEXT}+)*$")
_DOMAIN = re.compile(
    r"^(?=.{1,253}$)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
    r"[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$"
)
# RFC 6531 atext: ASCII atext or any non-ASCII character (checked by _visible below).
_ULOCAL = re.compile(rf"^(?:{_ATEXT}|[^\x00-\x7f])+(?:\.(?:{_ATEXT}|[^\x00-\x7f])+)*$")
_PHRASE = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.\- \t\x80-\U0010ffff]*$")
_QUOTED = re.compile(r'^"(?:[^"\\\r\n]|\\[^\r\n])*"$')
_FIELD = re.compile(rb"^([!-9;-~]+)[ \t]*:(.*)$", re.S)
_QUOTED_PART = re.compile(r'"(?:[^"\\\r\n]|\\[^\r\n])*"')


def header_values(raw: bytes, name: bytes = b"from") -> list[str]:
    """Raw, unfolded, undecoded values of every ``name`` field in the header block.

    Use this rather than ``EmailMessage.get_all("From")``: the stdlib's default policy
    decodes encoded-words, which is exactly what an attacker exploits. A field name with
    whitespace before the colon (obsolete syntax) counts as that field too.
    """
    end = len(raw)
    for sep in (b"\r\n\r\n", b"\n\n"):
        i = raw.find(sep)
        if i != -1:
            end = min(end, i)
    lines = re.split(rb"\r?\n", raw[:end])
    fields: list[bytes] = []
    for line in lines:
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += b" " + line.strip()
        else:
            fields.append(line)
    out = []
    for f in fields:
        m = _FIELD.match(f)
        if m and m.group(1).lower() == name.lower():
            out.append(m.group(2).decode("utf-8", "replace").strip())
    return out


def _singleton(local: str) -> bool:
    """A character that NFC replaces on its own (KELVIN SIGN -> K, OHM SIGN, GREEK
    QUESTION MARK -> ';', CJK compatibility ideographs): at a provider that does not
    normalise it names a mailbox of its own, which our key (NFC, lower case) would make
    equal to another one, ``\u212aate`` to ``kate``. Decomposed sequences (``u`` + U+0308)
    are one mailbox in either form and stay accepted."""
    return any(not ch.isascii() and unicodedata.normalize("NFC", ch) != ch for ch in local)


def parse_mailbox(value: str) -> str:
    """Return ``local@domain`` (the local part as written, the domain as lower-case A-label)
    from one From value, or raise FromError."""
    if any(ord(c) < 0x20 and c != "\t" for c in value) or "\x7f" in value:
        raise FromError("control characters in From")
    value = value.strip()
    if "(" in _QUOTED_PART.sub("", value) or ")" in _QUOTED_PART.sub("", value):
        # Comments, not parentheses inside a quoted display name ("Shop (Support)").
        raise FromError("comments in From are not accepted")
    if "<" in value:
        display, _, rest = value.rpartition("<")
        if not rest.endswith(">") or ">" in rest[:-1] or ">" in display:
            raise FromError("malformed angle address in From")
        addr = rest[:-1].strip()
        display = display.strip()
        if display and not (
            _QUOTED.match(display) or (_PHRASE.match(display) and "<" not in display)
        ):
            raise FromError("malformed display name in From")
    else:
        addr = value
    if addr.count("@") != 1:
        raise FromError("From must hold exactly one address")
    local, domain = addr.split("@")
    if "=?" in local or not (
        _LOCAL.match(local)
        or (
            _ULOCAL.match(local)
            and _visible(local)
            and not _mixed_script(local)
            and not _singleton(local)
        )
    ):
        raise FromError("unsupported local part in From")
    domain = a_label(domain)
    if not _DOMAIN.match(domain):
        raise FromError("unsupported domain in From")
    mailbox = f"{local}@{domain}"
    parsed = email.utils.getaddresses([value])
    if len(parsed) != 1 or canonical_address(parsed[0][1]) != canonical_address(mailbox):
        raise FromError("ambiguous From header")
    return mailbox


def mailboxes(value: str) -> list[str]:
    """The mailboxes an address-list value (To, Cc) names without any doubt: each element
    between top-level commas read by ``parse_mailbox``; elements it refuses (comments,
    groups, an ``@`` in an unquoted display name, route-like tails) name nobody.

    ``email.utils.getaddresses`` reads ``b-alias@relay.example <x@evil.example>`` as two
    addresses, the first in what every mail client shows as a display name: a signed
    auto-reply to such a From would look written to the alias (relay.authn.replay)."""
    elements, depth, quoted, escaped, start = [], 0, False, False, 0
    for i, ch in enumerate(value):
        if escaped:
            escaped = False
        elif quoted:
            escaped, quoted = ch == "\\", ch != '"'
        elif ch == '"':
            quoted = True
        elif ch in "<(":
            depth += 1
        elif ch in ">)":
            depth -= 1
        elif ch == "," and depth == 0:
            elements.append(value[start:i])
            start = i + 1
    elements.append(value[start:])
    out = []
    for element in elements:
        if not element.strip():
            continue
        try:
            out.append(parse_mailbox(element))
        except FromError:
            continue
    return out


def single_from(values: list[str]) -> str:
    """The one mailbox of the one From field, or raise FromError."""
    if len(values) != 1:
        raise FromError("the message must have exactly one From header")
    return parse_mailbox(values[0])


def same_address(a: str, b: str) -> bool:
    """One mailbox, as providers compare them: see ``canonical_address``."""
    return bool(a.rpartition("@")[0]) and canonical_address(a) == canonical_address(b)
