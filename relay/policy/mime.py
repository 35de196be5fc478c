"""MIME plumbing: safe limits, decoding every part, and writing parts back.

The stdlib parser (``policy.default``) does the parsing; this module adds what a hostile
sender forces on us: limits on header size, nesting and part count checked *before* any
expensive work, and decoding that never raises (unknown charsets fall back to utf-8 with
replacement, broken transfer encodings to the raw payload).
"""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage, Message
from typing import cast

import regex

from relay.core.errors import ContentRefused
from relay.policy.config import Limits

POLICY = email.policy.default.clone(linesep="\r\n", max_line_length=998)


Refused = ContentRefused  # relay.core.errors: the message cannot be judged safely


_HDR_END = regex.compile(rb"\r?\n\r?\n")


def precheck(raw: bytes, limits: Limits) -> None:
    """Header limits on the top-level header block, before parsing anything."""
    m = _HDR_END.search(raw, 0, limits.max_header_bytes + 4)
    head = raw[:m.start()] if m else raw[:limits.max_header_bytes + 1]
    if len(head) > limits.max_header_bytes:
        raise Refused("the message header is too large")
    field = 0
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t"):
            field += len(line)
        else:
            field = len(line)
        if field > limits.max_header_field_bytes:
            raise Refused("a header field is too large")


_ENCODED = ("quoted-printable", "base64")


class _Part(EmailMessage):
    """A parsed entity that keeps an *encoded* ``message/*`` body opaque while parsing.

    RFC 2046 allows only 7bit, 8bit or binary on ``message/*``; senders still write
    ``message/rfc822`` in quoted-printable or base64. The stdlib parser ignores the
    transfer encoding there and parses the encoded text as a message, so the attached
    original's header section (Received, ARC, DKIM lines naming a party's domain) ends up
    as body text. While ``_opaque`` is set such an entity reports ``application/
    octet-stream`` (the parser keeps its body as a string); :func:`parse` then decodes it
    and parses the decoded bytes as the message they are.
    """

    _opaque = True

    def _encoded_message(self) -> bool:
        return super().get_content_type().startswith("message/") and self._encoded()

    def _encoded(self) -> bool:
        for name, value in self.raw_items():   # raw values: no header parsing
            if name.lower() == "content-transfer-encoding":
                return str(value).strip().lower() in _ENCODED
        return False

    def get_content_type(self) -> str:
        # The stdlib parses the Content-Type header again on every call (the header
        # registry), and the policy asks thousands of times on a message of many parts:
        # the answer is kept until the raw header, the encoding or the default changes.
        ct = cte = None
        # the private list itself: raw_items() copies it, a third of this call's cost
        for name, value in self._headers:  # type: ignore[attr-defined]  # private, see above
            low = name.lower()
            if low == "content-type" and ct is None:
                ct = value
            elif low == "content-transfer-encoding" and cte is None:
                cte = value
        key = (str(ct) if ct is not None else None, str(cte) if cte is not None else None,
               self._opaque, self.get_default_type())
        cached: tuple[object, str] | None = self.__dict__.get("_ctype")
        if cached is not None and cached[0] == key:
            return cached[1]
        ctype = super().get_content_type()
        if self._opaque and ctype.startswith("message/") and self._encoded():
            ctype = "application/octet-stream"
        self.__dict__["_ctype"] = (key, ctype)
        return ctype


def _decode_messages(part: _Part) -> None:
    """Decode every encoded ``message/*`` body in ``part`` and parse it (iteratively)."""
    stack: list[Message] = [part]
    while stack:
        p = stack.pop()
        payload = p.get_payload()
        if isinstance(payload, list):
            stack.extend(c for c in payload if isinstance(c, Message))
            continue
        if not isinstance(p, _Part) or not p._encoded_message():
            continue
        try:
            decoded = p.get_payload(decode=True)  # bytes: p is not multipart here
        except Exception:
            decoded = None
        data = decoded if isinstance(decoded, bytes) else b""
        del p["Content-Transfer-Encoding"]
        p["Content-Transfer-Encoding"] = "7bit" if data.isascii() else "8bit"
        if p.get_content_type() == "message/delivery-status":
            # header blocks, as the stdlib parses them: parse the decoded body that way
            wrapped = b"Content-Type: message/delivery-status\r\n\r\n" + data
            blocks = email.message_from_bytes(wrapped, _class=_Part, policy=POLICY)
            p.set_payload(blocks.get_payload())
            continue
        inner = email.message_from_bytes(data, _class=_Part, policy=POLICY)
        p.set_payload([inner])
        stack.append(inner)


def parse(raw: bytes) -> EmailMessage:
    try:
        # cast: _class makes every entity a _Part; typeshed's overloads say EmailMessage
        msg = cast(_Part, email.message_from_bytes(raw, _class=_Part, policy=POLICY))
        _decode_messages(msg)
        return msg
    except RecursionError:
        raise Refused("the message structure is nested too deeply") from None


@dataclass
class Entity:
    part: Message
    parent: Message | None
    depth: int
    nested_headers: bool     # the headers of an attached message (message/rfc822)
    forwarded: bool = False  # inside an attached message: not the writer's own words


def walk(msg: Message, limits: Limits) -> Iterator[Entity]:
    """Every entity, iteratively (no recursion), enforcing nesting and part limits."""
    stack: list[tuple[Message, Message | None, int, bool, bool]] = [(msg, None, 0, False, False)]
    count = 0
    while stack:
        part, parent, depth, nested, inside = stack.pop()
        count += 1
        if count > limits.max_parts:
            raise Refused(f"the message has more than {limits.max_parts} MIME parts")
        if depth > limits.max_depth:
            raise Refused(f"the message nests MIME parts deeper than {limits.max_depth} levels")
        for name, value in part.raw_items():  # raw values: no parsing cost
            if len(name) + len(value) > limits.max_header_field_bytes:
                raise Refused("a header field is too large")
        yield Entity(part, parent, depth, nested, inside or nested)
        payload = part.get_payload() if part.is_multipart() else None
        if isinstance(payload, list):
            is_msg = part.get_content_maintype() == "message"
            for child in reversed(payload):
                if isinstance(child, Message):
                    stack.append((child, part, depth + 1, is_msg, inside or nested))


def header_text(part: Message, name: str) -> list[str]:
    out = []
    for v in part.get_all(name, []) or []:
        try:
            out.append(str(v))
        except Exception:
            out.append(str(getattr(v, "_value", v)))
    return out


def payload_bytes(part: Message) -> bytes:
    try:
        data = part.get_payload(decode=True)
    except Exception:
        data = None
    if isinstance(data, bytes):
        return data
    raw = part.get_payload()
    return raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else b""


def text_of(part: Message, limit: int) -> str:
    data = payload_bytes(part)[:limit]
    charset = part.get_content_charset() or "utf-8"
    try:
        return data.decode(charset, errors="replace")
    except LookupError:
        return data.decode("utf-8", errors="replace")


def filename_of(part: Message) -> str:
    try:
        name = part.get_filename()
    except Exception:
        name = None
    if not name:
        ct = part.get("Content-Type")
        name = getattr(ct, "params", {}).get("name") if ct is not None else None
    return str(name or "")


def is_attachment(part: Message) -> bool:
    disp = (part.get_content_disposition() or "").lower()
    if disp == "attachment":
        return True
    if part.get_content_maintype() in ("text", "multipart", "message"):
        return bool(filename_of(part)) and part.get_content_subtype() not in ("plain", "html")
    return True


def set_text(part: Message, text: str) -> None:
    """Replace a text part's content, keeping its subtype and disposition."""
    sub = part.get_content_subtype()
    disp = part.get("Content-Disposition")
    fn = filename_of(part)
    for h in ("Content-Transfer-Encoding", "Content-Type", "Content-Disposition"):
        del part[h]
    # set_content empties the body itself (ContentManager.set_content -> clear_content)
    EmailMessage.set_content(
        part,  # type: ignore[arg-type]  # parts are parse()'s _Part, an EmailMessage
        text, subtype=sub, charset="utf-8", cte="quoted-printable")
    if disp is not None:
        del part["Content-Disposition"]
        if fn:
            part.add_header("Content-Disposition", str(disp).split(";")[0], filename=fn)
        else:
            part["Content-Disposition"] = str(disp).split(";")[0]


def set_bytes(part: Message, data: bytes) -> None:
    """Replace a binary part's content (base64), keeping its headers."""
    import base64

    del part["Content-Transfer-Encoding"]
    part["Content-Transfer-Encoding"] = "base64"
    part.set_payload(base64.encodebytes(data).decode("ascii"))


def replace_header(part: Message, name: str, value: str) -> None:
    del part[name]
    part[name] = value


def remove_part(parent: Message, child: Message) -> None:
    payload = parent.get_payload()
    if isinstance(payload, list):
        rest = [p for p in payload if p is not child]
        if not rest or parent.get_content_type() == "message/rfc822":
            # a container must keep a child: the removed file leaves its marker behind
            from email.message import EmailMessage

            stub = EmailMessage()
            stub.set_content("[attachment removed]\n")
            rest = [stub if p is child else p for p in payload]
        parent.set_payload(rest)


def to_bytes(msg: Message) -> bytes:
    return msg.as_bytes(policy=POLICY)
