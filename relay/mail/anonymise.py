"""Anonymisation below the top-level header: every MIME part, at every depth.

The top-level rewrite (relay.mail.rewrite) decides the delivered header section; this
module walks the body as bytes and applies the same rule to everything else a mail
client can show or parse:

* MIME part headers: an allowlist (``PART_KEEP``). Content-ID is re-minted on the relay
  domain (relay.mail.mime_ids), Content-Description is dropped when it carries an
  address, everything else (Content-Location, X-Attachment-Id, ...) is dropped.
  A multipart boundary that looks like it holds an address or a host name is re-minted.
* Attached messages (``message/rfc822``, ``message/global``, also base64/QP-encoded, an
  ``.eml`` attached under another type, nested): their header section is rebuilt from an
  allowlist; From/To/Cc name only the parties, by the names and addresses the reader
  already knows, and nobody else; msg-ids are re-minted; trace fields, Delivered-To,
  DKIM, List-* and the rest are gone. Their bodies are walked again.
* ``text/rfc822-headers`` / ``message/global-headers``: the same header rule.
* ``message/delivery-status``: per-recipient fields rewritten or dropped.
* ``cid:`` URLs in text parts (decoded first: QP, base64, percent-encoding) point to the
  re-minted Content-IDs, so inline images keep displaying.
* What cannot be rewritten safely (``message/partial``, ``message/external-body``, an
  Outlook ``.msg`` or TNEF blob, nesting too deep) is replaced by a short visible note.

The walk is byte-level and copies untouched parts verbatim: a plain message costs one
regex search, a multipart one a scan of its part headers.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.message import Message
from email.utils import collapse_rfc2231_value, getaddresses
from urllib.parse import unquote

from relay.mail import fields as F
from relay.mail.mime_ids import IdMinter, has_cid

MAX_DEPTH = 16
PART_KEEP = frozenset(
    {
        "content-type",
        "content-transfer-encoding",
        "content-disposition",
        "content-id",
        "content-language",
        "content-description",
        "mime-version",
    }
)
# Header fields of an attached message that are copied (content-* go through PART_KEEP).
ATTACHED_KEEP = {"date": "Date", "auto-submitted": "Auto-Submitted"}
ATTACHED_ADDRESSES = ("from", "to", "cc")
ATTACHED_IDS = {
    "message-id": "Message-ID",
    "in-reply-to": "In-Reply-To",
    "references": "References",
}
MESSAGE_TYPES = frozenset({"message/rfc822", "message/global", "message/news"})
HEADER_TYPES = frozenset({"text/rfc822-headers", "message/global-headers"})
STATUS_TYPES = frozenset({"message/delivery-status", "message/global-delivery-status"})
# Any one of these makes a header section a message's (RFC 5322 §3.6).
MESSAGE_FIELDS = frozenset(
    {"from", "sender", "to", "cc", "subject", "date", "message-id", "received", "return-path"}
)
WALKED_MESSAGE_TYPES = MESSAGE_TYPES | HEADER_TYPES | STATUS_TYPES
UNSAFE_TYPES = frozenset(
    {
        "application/vnd.ms-outlook",  # an Outlook .msg: a binary store of headers
        "application/ms-tnef",  # winmail.dat: MAPI properties, addresses included
        "application/x-tnef",
        "application/vnd.ms-tnef",
    }
)
# DSN fields (RFC 3464 §2.2, 2.3) kept as they are: no address or host in them.
STATUS_KEEP = frozenset(
    {"action", "status", "arrival-date", "last-attempt-date", "will-retry-until"}
)
STATUS_ADDRESSES = frozenset({"final-recipient", "original-recipient", "x-actual-recipient"})
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTISH = re.compile(rf"@|{_LABEL}\.{_LABEL}\.?[A-Za-z]{{2,}}|{_LABEL}\.[A-Za-z]{{2,}}\b")
_BOUNDARY = re.compile(rb'(?i)[;\s]boundary\s*=\s*(?:"([^"\r\n]{1,200})"|([^;\s"]{1,200}))')
_START = re.compile(rb'(?i)(?<=[;\s])start\s*=\s*(?:"([^"\r\n]{0,500})"|([^;\s"]{1,500}))')
_ALIAS_LOCAL = re.compile(r"[a-z0-9][a-z0-9._+-]{0,63}")
_LANG = re.compile(rb"[A-Za-z0-9, \t-]{1,200}")
_FIELD_LINE = re.compile(rb"[!-9;-~]{1,76}:")
_EML = re.compile(rb"(?i)name\*?=[^;]*\.eml\b")
_ADDR_IN_TEXT = re.compile(r"@|%40|&#0*64;|&#x0*40;|&commat;", re.I)
# Parameters a reader needs (RFC 2045-2046, 2183, 3462, 3676, 1847, 2387, 5545); any
# other one is free text anybody can fill (``x-unix-owner="support@shop.example"``).
CT_PARAMS = frozenset(
    {"charset", "boundary", "start", "start-info", "type", "format", "delsp", "reply-type",
     "report-type", "protocol", "micalg", "method", "component", "smime-type", "name",
     "differences"}
)  # fmt: skip
CD_PARAMS = frozenset({"filename", "size", "creation-date", "modification-date", "read-date"})
FILE_NAMES = frozenset({"name", "filename"})
_EXT = re.compile(r"\.[A-Za-z0-9]{1,8}$")


def _decoded_words(value: str) -> str:
    """A parameter value as a mail client shows it: RFC 2047 words decoded (Outlook and
    Gmail write them inside quoted filenames although RFC 2047 §5 forbids it)."""
    if "=?" not in value:
        return value
    try:
        return str(make_header(decode_header(value)))
    except (HeaderParseError, UnicodeError, LookupError, ValueError):
        return value


def _neutral_name(shown: str) -> str:
    """``attachment`` with the extension of the name it replaces (so it still opens)."""
    ext = _EXT.search(shown.strip())
    return "attachment" + (ext.group(0).lower() if ext else "")


@dataclass(frozen=True)
class Parties:
    """Who may be named anywhere in the delivered copy, and how."""

    sender_addresses: frozenset[str]  # the writer's real addresses, lower-case
    sender_mailbox: str  # how the reader knows the writer: '"Shop via M" <s-...@relay>'
    recipient_address: str  # the reader's own address: theirs to see
    recipient_mailbox: str
    relay_domain: str
    relay_host: str
    marketplace: str

    @property
    def sender_domains(self) -> frozenset[str]:
        return frozenset(a.rpartition("@")[2] for a in self.sender_addresses if "@" in a)


@dataclass
class _Entity:
    """A MIME entity's filtered header fields and what the walk needs from them."""

    fields: list[bytes]
    ctype: str
    cte: str
    boundary: bytes | None
    new_boundary: bytes | None
    eml_name: bool


class Anonymiser:
    """Walks one delivered copy. ``minter`` keeps ids consistent across the walk."""

    def __init__(self, parties: Parties, minter: IdMinter) -> None:
        self.p = parties
        self.minter = minter

    # ------------------------------------------------------------------ entry points

    def top(
        self, content_fields: list[tuple[str, bytes]], body: bytes
    ) -> tuple[list[bytes], bytes]:
        """The top level's Content-* fields (already chosen by the caller) and body."""
        entity = self._entity(content_fields)
        why = self._unsafe(entity)
        if why:
            head, _, note = self._marker(why).partition(b"\r\n\r\n")
            return [line + b"\r\n" for line in head.split(b"\r\n")], note
        return entity.fields, self._body(entity, body, 0)

    @staticmethod
    def _unsafe(e: _Entity) -> str:
        """Why an entity cannot be delivered as it is ("" when it can)."""
        if e.ctype in UNSAFE_TYPES:
            return "an attachment that cannot be checked for addresses"
        if e.ctype.startswith("message/") and e.ctype not in WALKED_MESSAGE_TYPES:
            return "an attached message that cannot be checked"
        return ""

    # ------------------------------------------------------------------ headers

    def _entity(self, flds: list[tuple[str, bytes]], *, default: str = "text/plain") -> _Entity:
        out: list[bytes] = []
        ctype, cte, boundary, new_boundary, eml = default, "7bit", None, None, False
        for name, field in flds:
            if name not in PART_KEEP:
                continue
            raw = F.value(field)
            if name == "content-type":
                ctype = F.text(raw).split(";", 1)[0].strip().lower() or default
                changed = raw
                m = _BOUNDARY.search(b";" + raw.split(b";", 1)[1] if b";" in raw else b"")
                if m:
                    boundary = m.group(1) or m.group(2)
                    if ctype.startswith("multipart/") and _HOSTISH.search(F.text(boundary)):
                        minted = self.minter.mint(boundary).split("@")[0].encode()
                        new_boundary = b"=_relay_" + minted
                        changed = changed.replace(boundary, new_boundary)
                changed = _START.sub(self._start, changed)
                eml = eml or bool(_EML.search(raw))
                changed = self._params("Content-Type", changed, CT_PARAMS)
                out.append(_kept_or_built(field, raw, changed, "Content-Type"))
            elif name == "content-disposition":
                eml = eml or bool(_EML.search(raw))
                changed = self._params("Content-Disposition", raw, CD_PARAMS)
                out.append(_kept_or_built(field, raw, changed, "Content-Disposition"))
            elif name == "content-transfer-encoding":
                built = F.structured(name, raw)  # the token alone: no comment rides along
                if built is not None:
                    cte = F.value(built).decode("ascii")
                    out.append(built)
            elif name == "content-id":
                out.append(F.make("Content-ID", self.minter.content_id(F.text(raw))))
            elif name == "content-language":
                if _LANG.fullmatch(raw):
                    out.append(b"Content-Language: " + raw + b"\r\n")
            elif name == "content-description":
                if not self._names_someone(F.text(raw)):
                    out.append(F.unstructured("Content-Description", raw))
            elif name == "mime-version":
                built = F.structured(name, raw)
                if built is not None:
                    out.append(built)
        return _Entity(out, ctype, cte, boundary, new_boundary, eml)

    def _params(self, name: str, raw: bytes, allowed: frozenset[str]) -> bytes:
        """``raw`` with only the ``allowed`` parameters, and a ``name``/``filename`` that
        names someone (decoded first: RFC 2231, continuations included, and RFC 2047)
        replaced by a neutral one with the same extension. Unchanged: ``raw`` itself."""
        if b";" not in raw:
            return raw
        msg = Message()
        msg[name] = F.text(raw)
        params = F.params(msg, name)
        if len(params) < 2:
            return raw
        kept: list[str] = [params[0][0]]
        changed = False
        for key, val in params[1:]:
            key = key.strip().lower()
            if key not in allowed:
                changed = True
                continue
            value = collapse_rfc2231_value(val) if isinstance(val, tuple) else str(val)
            if key in FILE_NAMES:
                shown = _decoded_words(value)
                if self._names_someone(shown) or self._names_someone(unquote(shown)):
                    value, changed = _neutral_name(shown), True
            kept.append(f'{key}="{value.replace(chr(92), "").replace(chr(34), "")}"')
        if not changed:
            return raw
        return "; ".join(kept).encode("utf-8")

    def _start(self, m: re.Match[bytes]) -> bytes:
        """multipart/related's ``start`` names the root part by its Content-ID."""
        return b'start="<' + self.minter.mint(m.group(1) or m.group(2)).encode() + b'>"'

    def _names_someone(self, text: str) -> bool:
        low = text.lower()
        return bool(_ADDR_IN_TEXT.search(low)) or any(d in low for d in self.p.sender_domains)

    def map_address(self, address: str) -> str | None:
        """The mailbox the reader may see for ``address``, or None to leave it out."""
        addr = address.strip().lower()
        if addr in self.p.sender_addresses:
            return self.p.sender_mailbox
        if addr == self.p.recipient_address.lower():
            return self.p.recipient_mailbox
        local, at, domain = addr.rpartition("@")
        if at and domain == self.p.relay_domain.lower() and _ALIAS_LOCAL.fullmatch(local):
            return f"<{addr}>"
        return None

    def attached_headers(self, header_bytes: bytes) -> tuple[list[bytes], list[tuple[str, bytes]]]:
        """An attached message's header section: (non-content fields, content fields)."""
        out: list[bytes] = []
        content: list[tuple[str, bytes]] = []
        seen: set[str] = set()
        for name, field in F.fields(header_bytes):
            raw = F.value(field)
            if name.startswith("content-") or name == "mime-version":
                content.append((name, field))
            elif name == "subject":
                out.append(F.unstructured("Subject", raw))
            elif name in ATTACHED_KEEP:
                built = F.structured(name, raw)
                if built is not None:
                    out.append(built)
            elif name in ATTACHED_ADDRESSES and name not in seen:
                seen.add(name)
                boxes = self._mailboxes(name, [F.text(raw)])
                if boxes:
                    out.append(F.make(name.capitalize(), ",\r\n ".join(boxes)))
                elif name == "from":
                    out.append(b"From: undisclosed-sender:;\r\n")
                elif name == "to":
                    out.append(b"To: undisclosed-recipients:;\r\n")
            elif name in ATTACHED_IDS:
                ids = self.minter.msg_ids(F.text(raw))
                if ids:
                    out.append(F.make(ATTACHED_IDS[name], "\r\n ".join(ids)))
        return out, content

    def _mailboxes(self, name: str, values: list[str]) -> list[str]:
        boxes: list[str] = []
        for _, address in getaddresses(values):
            mapped = self.map_address(address) if address else None
            if mapped and mapped not in boxes:
                boxes.append(mapped)
        return boxes

    # ------------------------------------------------------------------ bodies

    def _body(self, e: _Entity, body: bytes, depth: int) -> bytes:
        if depth > MAX_DEPTH:
            return self._marker_body("nested too deeply to be checked")
        ctype = e.ctype
        if ctype.startswith("multipart/"):
            return self._multipart(e, body, depth)
        if ctype in MESSAGE_TYPES:
            return self._encoded(e, body, lambda b: self.message(b, depth + 1))
        if ctype in HEADER_TYPES:
            return self._encoded(e, body, self._header_block)
        if ctype in STATUS_TYPES:
            return self._encoded(e, body, self._status)
        if ctype.startswith("text/"):
            return self._text(e, body)
        if e.eml_name and ctype in ("application/octet-stream", "application/x-eml"):
            return self._encoded(e, body, lambda b: self._maybe_message(b, depth + 1))
        return body

    def message(self, raw: bytes, depth: int) -> bytes:
        """A whole attached message: header allowlist, then its body walked. Line breaks
        are made CRLF first: a decoded attachment was never checked for bare CR or LF,
        and a reader must not split its header section differently from us."""
        raw = _canonical_lines(raw)
        head, body = _split_head(raw)
        if raw.startswith((b"\r\n", b"\n")):
            head, body = b"", raw.lstrip(b"\r\n")
        names = {name for name, _ in F.fields(head)}
        if not names & MESSAGE_FIELDS:
            # No field of a message at all: not something we can vouch for. The stdlib
            # parser, for one, turns a QP-encoded message/rfc822 into exactly this (MIME
            # fields only, the original header section left as encoded body text).
            return (
                b"Subject: Attached message removed\r\nMIME-Version: 1.0\r\n"
                b'Content-Type: text/plain; charset="us-ascii"\r\n\r\n'
                + self._marker_body("an attached message that cannot be checked was removed")
            )
        plain, content = self.attached_headers(head)
        entity = self._entity(content)
        new_body = self._body(entity, body, depth)
        return b"".join(plain) + b"".join(entity.fields) + b"\r\n" + new_body

    def _maybe_message(self, raw: bytes, depth: int) -> bytes:
        """An ``.eml`` attached as octets: a message if it starts like one."""
        return self.message(raw, depth) if _FIELD_LINE.match(raw) else raw

    def _header_block(self, raw: bytes) -> bytes:
        plain, content = self.attached_headers(_canonical_lines(raw))
        return b"".join(plain) + b"".join(self._entity(content).fields)

    def _status(self, raw: bytes) -> bytes:
        """message/delivery-status: blocks of fields; addresses and hosts go."""
        blocks = [b for b in re.split(rb"\r?\n[ \t]*\r?\n", raw) if b.strip()]
        out: list[bytes] = []
        for i, block in enumerate(blocks):
            kept: list[bytes] = []
            for name, field in F.fields(block):
                raw_value = F.value(field)
                if name in STATUS_KEEP and raw_value.isascii():
                    kept.append(F.make(name.title(), F.text(raw_value)))
                elif name == "reporting-mta" and i == 0:
                    kept.append(F.make("Reporting-MTA", f"dns; {self.p.relay_host}"))
                elif name in STATUS_ADDRESSES:
                    addr = F.text(raw_value).partition(";")[2].strip().strip("<>")
                    mapped = self.map_address(addr)
                    if mapped:
                        bare = mapped.rpartition("<")[2].rstrip(">")
                        kept.append(F.make(name.title(), f"rfc822; {bare}"))
            if kept:
                out.append(b"".join(kept))
        return b"\r\n".join(out)

    def _text(self, e: _Entity, body: bytes) -> bytes:
        """cid: URLs in a text part, rewritten in its own transfer encoding."""
        if e.cte in ("base64", "quoted-printable"):
            decoded = _decode(e.cte, body)
            if decoded is None or not has_cid(decoded):
                return body
            return _encode(e.cte, self.minter.cid_urls(decoded))
        if not has_cid(body):
            return body
        return self.minter.cid_urls(body)

    def _encoded(self, e: _Entity, body: bytes, fn: Callable[[bytes], bytes]) -> bytes:
        if e.cte in ("base64", "quoted-printable"):
            decoded = _decode(e.cte, body)
            if decoded is None:
                return self._marker_body("could not be decoded")
            return _encode(e.cte, fn(decoded))
        return fn(body)

    def _multipart(self, e: _Entity, body: bytes, depth: int) -> bytes:
        if e.boundary is None:
            return body
        new = b"--" + (e.new_boundary or e.boundary)
        changed = e.new_boundary is not None
        out: list[bytes] = []
        pos = 0
        opened = False
        for start, end, close in _delimiters(body, b"--" + e.boundary):
            segment = body[pos:start]
            child = self._child(segment, depth) if opened else segment
            changed = changed or child is not segment
            out.append(child)
            out.append((b"\r\n" if start > 0 else b"") + new + (b"--" if close else b""))
            pos = end
            opened = True
            if close:
                break
        else:
            if opened:  # no closing delimiter: the last part runs to the end
                out.append(self._child(body[pos:], depth))
                return b"".join(out)
        if not changed:
            return body
        out.append(body[pos:])
        return b"".join(out)

    def _child(self, segment: bytes, depth: int) -> bytes:
        """One body part as it stands between delimiters (starts with the line break)."""
        lead = _line_break(segment)
        part = segment[len(lead) :]
        if _line_break(part):  # no header fields at all
            head, body = b"", part[len(_line_break(part)) :]
        else:
            head, body = _split_head(part)
        entity = self._entity(F.fields(head))
        why = self._unsafe(entity)
        if why:
            return lead + self._marker(why)
        new_body = self._body(entity, body, depth + 1)
        fields = b"".join(entity.fields)
        if new_body is body and fields == head + b"\r\n":
            return segment  # untouched: no copy of a large attachment
        return lead + fields + b"\r\n" + new_body

    def _marker_body(self, why: str) -> bytes:
        return f"[{self.p.marketplace} removed a part of this message: {why}.]\r\n".encode(
            "ascii", "replace"
        )

    def _marker(self, why: str) -> bytes:
        return (
            b'Content-Type: text/plain; charset="us-ascii"\r\n'
            b"Content-Transfer-Encoding: 7bit\r\nContent-Disposition: inline\r\n\r\n"
            + self._marker_body(f"{why} was removed to keep addresses private")
        )


def _delimiters(body: bytes, dash_boundary: bytes) -> Iterator[tuple[int, int, bool]]:
    """(start incl. the preceding line break, end, closing?) of each delimiter line
    (RFC 2046 §5.1.1). bytes.find, not a regex: this runs over every multipart body."""
    size = len(body)
    i = body.find(dash_boundary)
    while i >= 0:
        if i == 0 or body[i - 1] == 10:  # at a line start
            j = i + len(dash_boundary)
            close = body[j : j + 2] == b"--"
            j += 2 if close else 0
            while j < size and body[j] in (32, 9):
                j += 1
            if j == size or body[j] in (13, 10):
                start = i - 2 if body[i - 2 : i] == b"\r\n" else max(i - 1, 0)
                yield start, j, close
        i = body.find(dash_boundary, i + 1)


def _kept_or_built(field: bytes, raw: bytes, changed: bytes, name: str) -> bytes:
    """The field as it came (folding kept) unless we changed it or it has 8-bit bytes."""
    if changed == raw and field.isascii():
        return field
    return F.with_params(name, changed)


def _split_head(data: bytes) -> tuple[bytes, bytes]:
    """Header section and body at the first empty line (CRLF, or LF in a decoded part).
    bytes.find: a regex with an optional first character crawls over a megabyte."""
    crlf = data.find(b"\r\n\r\n")
    lf = data.find(b"\n\n", 0, crlf if crlf >= 0 else len(data))
    if lf >= 0 and (crlf < 0 or lf < crlf):
        return data[:lf], data[lf + 2 :]
    if crlf >= 0:
        return data[:crlf], data[crlf + 4 :]
    return data, b""


def _canonical_lines(data: bytes) -> bytes:
    if data.count(b"\r\n") == data.count(b"\n") == data.count(b"\r"):
        return data
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")


def _line_break(data: bytes) -> bytes:
    """The line break ``data`` starts with, if any."""
    if data.startswith(b"\r\n"):
        return b"\r\n"
    return b"\n" if data.startswith(b"\n") else b""


def _decode(cte: str, body: bytes) -> bytes | None:
    try:
        if cte == "base64":
            return base64.b64decode(b"".join(body.split()) + b"===", validate=False)
        return binascii.a2b_qp(body)
    except (binascii.Error, ValueError):
        return None


def _encode(cte: str, data: bytes) -> bytes:
    if cte == "base64":
        return base64.encodebytes(data).replace(b"\n", b"\r\n")
    lf = data.replace(b"\r\n", b"\n")
    return binascii.b2a_qp(lf, istext=True).replace(b"\n", b"\r\n")
