"""A byte scan for addresses and domains in every encoding a mail reader might undo.

``leaks(data, needles)`` looks for each needle in ``data`` as it stands and as it is
commonly encoded: plain and case-folded; base64 at all three byte alignments (also across
base64 line breaks, and RFC 2047 "B" is base64 too); quoted-printable and RFC 2047 "Q"
(``=40``, ``=2E``, every byte hex-encoded, also across soft line breaks); percent-encoding;
HTML character references (decimal, hex, named). Then it decodes the whole message with
the stdlib parser, every part at every depth (attached messages included), every header
RFC 2047-decoded, and looks for the plain needle again.
"""

from __future__ import annotations

import base64
import binascii
import email
import email.policy
from email.header import decode_header, make_header
from email.message import Message

_HTML_NAMED = {"@": ["&commat;"], ".": ["&period;"]}


def _hexes(needle: str, fmt: str) -> str:
    return "".join(fmt.format(b) for b in needle.encode())


def text_forms(needle: str) -> list[str]:
    """Lower-case textual encodings of ``needle`` (compared with lower-cased data)."""
    n = needle.lower()
    forms = {n}
    special = {c for c in n if not c.isalnum()}
    for prefix, upper in (("=", True), ("%", True)):
        partial = n
        for c in special:
            partial = partial.replace(c, f"{prefix}{ord(c):02X}")
        forms.add(partial.lower())
        forms.add(_hexes(n, prefix + ("{:02X}" if upper else "{:02x}")).lower())
    for c in special:
        for form in (f"&#{ord(c)};", f"&#x{ord(c):x};", f"&#0{ord(c)};", *_HTML_NAMED.get(c, [])):
            forms.add(n.replace(c, form))
    forms.add("".join(f"&#{ord(ch)};" for ch in n))
    forms.add("".join(f"&#x{ord(ch):x};" for ch in n))
    return sorted(forms)


def base64_forms(needle: str) -> list[bytes]:
    """The part of base64(prefix + needle) that depends on the needle only, for prefixes
    of 0, 1 and 2 bytes: whatever the alignment, one of these stands in the encoding."""
    out: set[bytes] = set()
    for variant in {needle, needle.lower()}:
        raw = variant.encode()
        for k in range(3):
            enc = base64.b64encode(b"\0" * k + raw)
            full = (k + len(raw)) // 3 * 4
            core = enc[4 if k else 0 : full]
            if len(core) >= 8:
                out.add(core)
    return sorted(out)


def _decoded_text(data: bytes) -> str:
    """Every header (RFC 2047-decoded) and every decoded part payload, at every depth."""
    chunks: list[str] = []
    try:
        msg = email.message_from_bytes(data, policy=email.policy.compat32)
    except Exception:  # a scanner must not hide a leak behind a parse error
        return data.decode("latin-1")

    def walk(m: Message) -> None:
        for _, v in m.items():
            try:
                chunks.append(str(make_header(decode_header(str(v)))))
            except Exception:
                chunks.append(str(v))
        payload = m.get_payload()
        cte = str(m.get("Content-Transfer-Encoding", "")).strip().lower()
        if isinstance(payload, list) and m.get_content_maintype() == "message" and cte in (
            "base64",
            "quoted-printable",
        ):  # the stdlib parses an encoded attached message as if it were not encoded
            body = "".join(p.as_string() for p in payload if isinstance(p, Message))
            inner = (
                base64.b64decode("".join(body.split()[-100000:]) + "===")
                if cte == "base64"
                else binascii.a2b_qp(body.encode("utf-8", "replace"))
            )
            chunks.append(_decoded_text(inner))
        if isinstance(payload, list):
            for sub in payload:
                if isinstance(sub, Message):
                    walk(sub)
            return
        raw = m.get_payload(decode=True)
        if isinstance(raw, bytes):
            chunks.append(raw.decode("utf-8", "replace"))
            chunks.append(raw.decode("latin-1"))
            if m.get_content_type() in ("message/rfc822", "message/global", "text/rfc822-headers"):
                chunks.append(_decoded_text(raw))

    walk(msg)
    return "\n".join(chunks)


def leaks(data: bytes, needles: list[str]) -> list[str]:
    """``"needle (form)"`` for every needle found in any form; [] when clean."""
    found: list[str] = []
    low = data.lower()
    views = {
        "raw": low,
        "qp-joined": low.replace(b"=\r\n", b""),
        "unfolded": low.replace(b"\r\n ", b" ").replace(b"\r\n\t", b"\t"),
    }
    squeezed = data.replace(b"\r\n", b"")
    decoded = _decoded_text(data).lower()
    for needle in needles:
        for form in text_forms(needle):
            for view, hay in views.items():
                if form.encode() in hay:
                    found.append(f"{needle} ({view}: {form})")
        for form64 in base64_forms(needle):
            if form64 in squeezed:
                found.append(f"{needle} (base64: {form64.decode()})")
        if needle.lower() in decoded:
            found.append(f"{needle} (decoded)")
    return sorted(set(found))


def case_count(needles: list[str]) -> int:
    """How many distinct needle/form checks ``leaks`` makes per message."""
    return sum(len(text_forms(n)) * 3 + len(base64_forms(n)) + 1 for n in needles)
