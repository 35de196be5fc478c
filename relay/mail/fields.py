"""Header sections as bytes: split into fields, and 8-bit values made 7-bit.

The rewrite works on bytes so that what it keeps is copied verbatim (folding included)
and costs next to nothing. Raw UTF-8 in a header (RFC 6532) is accepted at intake, but
an MX that did not offer SMTPUTF8 may refuse it, so every kept value with 8-bit bytes
is re-encoded: unstructured text as RFC 2047 encoded-words, Content-Type and
Content-Disposition parameters as RFC 2231. Bytes that are not UTF-8 are read as the
archive reads them (relay.mail.parse.header_text: Windows-1252, a legacy client's Latin-1).
"""

from __future__ import annotations

import re
from email.header import Header
from email.message import Message
from email.utils import encode_rfc2231, format_datetime, parsedate_to_datetime
from typing import cast

_LINESEP = b"\r\n"

#: One parameter's value as ``Message.get_params`` gives it: a string, or for an RFC 2231
#: value (``name*=utf-8''...``) the ``(charset, language, value)`` triple.
ParamValue = str | tuple[str | None, str | None, str]


def params(msg: Message, name: str) -> list[tuple[str, ParamValue]]:
    """The parameters of header ``name`` (main value first), [] when there is none."""
    # cast: typeshed types the values as str only, but the stdlib returns the RFC 2231
    # triple for extended parameters (email.message._parseparam / decode_params).
    return cast("list[tuple[str, ParamValue]]", msg.get_params(header=name) or [])


def fields(header_bytes: bytes) -> list[tuple[str, bytes]]:
    """``(lower-case name, whole field with folding and final CRLF)`` in order.

    Lines without a colon that are not continuations (garbage) are dropped: they would
    otherwise glue onto whatever a downstream parser guesses. Bare LF is tolerated here
    (parts re-serialised by the policy use CRLF, but a part body may not)."""
    out: list[tuple[str, bytes]] = []
    name = ""
    field: list[bytes] = []
    for line in header_bytes.replace(b"\r\n", b"\n").split(b"\n"):
        if not line:
            continue
        if line[:1] in (b" ", b"\t"):
            if field:
                field.append(line)
            continue
        if field:
            out.append((name, _LINESEP.join(field) + _LINESEP))
            field = []
        head, colon, _ = line.partition(b":")
        if not colon or not head.strip() or b" " in head.strip():
            continue
        name = head.strip().lower().decode("ascii", "replace")
        field = [line]
    if field:
        out.append((name, _LINESEP.join(field) + _LINESEP))
    return out


def value(field: bytes) -> bytes:
    """The unfolded value of a whole field (what follows the colon)."""
    raw = field.partition(b":")[2]
    return b" ".join(raw.split()) if b"\n" in raw else raw.strip()


def text(raw: bytes) -> str:
    from relay.mail.parse import header_text

    return header_text(raw)


def is_8bit(data: bytes) -> bool:
    return not data.isascii()


def make(name: str, value_text: str) -> bytes:
    """A field we build. ASCII by construction, except an address with a UTF-8 local part
    (RFC 6531), which only an SMTPUTF8 delivery can carry and is kept as UTF-8."""
    return f"{name}: {value_text}".encode() + _LINESEP


def unstructured(name: str, raw_value: bytes) -> bytes:
    """``Name: value`` with 8-bit text as folded RFC 2047 encoded-words."""
    if raw_value.isascii():
        return name.encode("ascii") + b": " + raw_value + _LINESEP
    header = Header(text(raw_value), "utf-8", header_name=name)
    return f"{name}: {header.encode(linesep=chr(13) + chr(10))}".encode("ascii") + _LINESEP


def with_params(name: str, raw_value: bytes) -> bytes:
    """``Content-Type``/``Content-Disposition`` with 8-bit parameter values re-encoded
    (RFC 2231); 8-bit anywhere else in the value is replaced."""
    if raw_value.isascii():
        return name.encode("ascii") + b": " + raw_value + _LINESEP
    msg = Message()
    msg[name] = text(raw_value)
    found = params(msg, name)
    if not found:
        return make(name, text(raw_value).encode("ascii", "replace").decode())
    main, _ = found[0]
    parts = [main.encode("ascii", "replace").decode()]
    for key, val in found[1:]:
        key = key.encode("ascii", "ignore").decode()
        if not key:
            continue
        # already RFC 2231 in the source: the value is the triple's last item
        value = val[2] if isinstance(val, tuple) else val
        if value.isascii():
            parts.append(f'{key}="{value.replace(chr(92), "").replace(chr(34), "")}"')
        else:
            parts.append(f"{key}*={encode_rfc2231(value, 'utf-8')}")
    return make(name, ";\r\n\t".join(parts))


_TOKEN = re.compile(rb"[ \t]*([A-Za-z0-9][A-Za-z0-9._-]{0,63})")
_VERSION = re.compile(rb"[ \t]*1[ \t]*\.[ \t]*0(?![0-9])")
_NAMES = {"date": "Date", "mime-version": "MIME-Version", "auto-submitted": "Auto-Submitted",
          "content-transfer-encoding": "Content-Transfer-Encoding"}  # fmt: skip


def structured(name: str, raw_value: bytes) -> bytes | None:
    """Date, MIME-Version, Auto-Submitted or Content-Transfer-Encoding rebuilt from what it
    means, without comments or parameters: those are free text, where an address rides
    along unseen (``Date: ... (support@shop.example)``). None when it means nothing (the
    caller drops it; the top level then writes its own)."""
    key = name.lower()
    if key == "date":
        try:
            when = parsedate_to_datetime(text(raw_value))
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        return make("Date", format_datetime(when))
    if key == "mime-version":
        return make("MIME-Version", "1.0") if _VERSION.match(raw_value) else None
    m = _TOKEN.match(raw_value)
    return make(_NAMES[key], m.group(1).decode("ascii").lower()) if m else None
