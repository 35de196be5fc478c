"""Strict reading of the From header: exactly one plain mailbox or nothing.

Why so strict: the decision "is this the seller?" rests on the From address, and mail
parsers disagree on odd input (Composition Kills, Mailsploit, CPython gh-102988). We read
the raw header bytes ourselves and accept only the forms real mail clients produce:

* ``local@domain``
* ``Display Name <local@domain>`` (atoms and RFC 2047 encoded-words in the display name)
* ``"Quoted Display" <local@domain>``

Refused: several From fields, several mailboxes, groups, comments, route addresses, quoted
or encoded-word local parts, non-ASCII addresses, control characters, an unquoted ``@`` or
``<`` in the display name, and anything on which ``email.utils`` disagrees with us.
"""

from __future__ import annotations

import email.utils
import re

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_LOCAL = re.compile(rf"^{_ATEXT}+(?:\.{_ATEXT}+)*$")
_DOMAIN = re.compile(
    r"^(?=.{1,253}$)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
    r"[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$"
)
_PHRASE = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.\- \t\x80-\U0010ffff]*$")
_QUOTED = re.compile(r'^"(?:[^"\\\r\n]|\\[^\r\n])*"$')
_FIELD = re.compile(rb"^([!-9;-~]+)[ \t]*:(.*)$", re.S)


class FromError(ValueError):
    """The From header is not exactly one plain mailbox; ``str()`` is a safe reason."""


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


def parse_mailbox(value: str) -> str:
    """Return ``local@domain`` (domain lower-cased) from one From value, or raise FromError."""
    if any(ord(c) < 0x20 and c != "\t" for c in value) or "\x7f" in value:
        raise FromError("control characters in From")
    value = value.strip()
    if "(" in value or ")" in value:
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
    if not _LOCAL.match(local) or "=?" in local:
        raise FromError("unsupported local part in From")
    domain = domain.rstrip(".")
    if not _DOMAIN.match(domain):
        raise FromError("unsupported domain in From")
    mailbox = f"{local}@{domain.lower()}"
    parsed = email.utils.getaddresses([value])
    if len(parsed) != 1 or parsed[0][1].lower() != mailbox.lower():
        raise FromError("ambiguous From header")
    return mailbox


def single_from(values: list[str]) -> str:
    """The one mailbox of the one From field, or raise FromError."""
    if len(values) != 1:
        raise FromError("the message must have exactly one From header")
    return parse_mailbox(values[0])


def same_address(a: str, b: str) -> bool:
    """Local parts compared exactly, domains case-insensitively (RFC 5321 §2.4)."""
    la, _, da = a.rpartition("@")
    lb, _, db = b.rpartition("@")
    return bool(la) and la == lb and da.lower().rstrip(".") == db.lower().rstrip(".")
