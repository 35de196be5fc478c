"""Structural limits of a message, checked by one linear pass over its bytes.

Why a separate pass: the stdlib parsers that every later stage relies on are quadratic in
several dimensions a sender controls (encoded-words in one header, RFC 2231 parameter
continuations, the stack of open multipart boundaries that every body line is tested
against, the number of parts). A message that is over a limit must be refused before any
of them runs, so this scan never builds an email.message object: it walks header lines
and finds boundary delimiters with one compiled pattern per set of open boundaries, so
its cost is linear in the message size and bounded by the limits themselves.

Each refusal names the setting (``[message]`` in the settings) that was exceeded, and is
permanent (``554 5.6.0`` for structure, ``552 5.3.4`` for size): the message is at fault,
a retry would meet the same limit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from relay.core import replies
from relay.core.errors import MessageLimitExceeded
from relay.core.replies import Reply

_FIELD_NAME = re.compile(rb"[!-9;-~]+[ \t]*:")
_BOUNDARY = re.compile(rb'(?i)(?:^|;)\s*boundary\s*=\s*(?:"([^"]*)"|([^;\s]*))')
_CACHE_MAX = 64
_PARAM_FIELDS = (b"content-type", b"content-disposition")


@dataclass(frozen=True)
class StructureLimits:
    """The limits of ``check``; relay.settings.MessageSection builds one."""

    max_parts: int = 500
    max_depth: int = 12
    max_header_fields: int = 500
    max_header_line_bytes: int = 4096
    max_header_field_bytes: int = 65536
    max_header_bytes: int = 262144
    max_encoded_words_per_field: int = 200
    max_encoded_words: int = 2000
    max_mime_params_per_field: int = 32
    max_mime_params: int = 4000


LimitExceeded = MessageLimitExceeded  # relay.core.errors: over a structural limit


def structure_refusal(what: str, setting: str, limit: int) -> Reply:
    return replies.STRUCTURE_LIMIT.with_text(
        f"Message refused: {what} (limit {limit}, setting message.{setting})"
    )


def size_refusal(what: str, setting: str, limit: int) -> Reply:
    return replies.SIZE_LIMIT.with_text(
        f"Message refused: {what} (limit {limit}, setting message.{setting})"
    )


@dataclass
class _Section:
    """What one header section tells the scan: where its body starts, and its type."""

    body: int
    maintype: bytes
    boundary: bytes | None


class _Scan:
    def __init__(self, raw: bytes, limits: StructureLimits) -> None:
        self.raw = raw
        self.lim = limits
        self.encoded_words = 0
        self.params = 0
        self.parts = 0
        self._patterns: dict[tuple[bytes, ...], re.Pattern[bytes]] = {}

    # -- header sections ---------------------------------------------------------------
    def header_section(self, pos: int, open_boundaries: tuple[bytes, ...]) -> _Section:
        """Read header lines from ``pos`` up to the blank line (or the first line that is
        not a header, or a delimiter of an open boundary), enforcing the header limits."""
        raw, lim = self.raw, self.lim
        end_of_raw = len(raw)
        fields = 0
        section = 0
        field_len = 0
        field_ew = 0
        field_name = b""
        ctype: list[bytes] = []
        value: list[bytes] = []
        delims = {b"--" + b for b in open_boundaries}
        while pos < end_of_raw:
            nl = raw.find(b"\r\n", pos, pos + lim.max_header_line_bytes + 2)
            if nl < 0:
                if end_of_raw - pos > lim.max_header_line_bytes:
                    raise LimitExceeded(
                        size_refusal(
                            "a header line is too long",
                            "max_header_line_bytes",
                            lim.max_header_line_bytes,
                        )
                    )
                nl = end_of_raw
            line = raw[pos:nl]
            if not line:
                self._end_field(field_name, field_len, field_ew, value)
                return self._section(nl + 2, ctype)
            section += len(line) + 2
            if section > lim.max_header_bytes:
                raise LimitExceeded(
                    size_refusal(
                        "a header section is too large", "max_header_bytes", lim.max_header_bytes
                    )
                )
            if line[:1] in (b" ", b"\t") and fields:
                field_len += len(line)
                field_ew += line.count(b"=?")
                if field_name in _PARAM_FIELDS:
                    value.append(line)
            else:
                if line.rstrip(b" \t") in delims or line.rstrip(b" \t")[:-2] in delims:
                    self._end_field(field_name, field_len, field_ew, value)
                    return self._section(pos, ctype)  # a part with no body
                m = _FIELD_NAME.match(line)
                if m is None:  # not a header: the body starts here (a defect, tolerated)
                    self._end_field(field_name, field_len, field_ew, value)
                    return self._section(pos, ctype)
                self._end_field(field_name, field_len, field_ew, value)
                fields += 1
                if fields > lim.max_header_fields:
                    raise LimitExceeded(
                        structure_refusal(
                            "too many header fields", "max_header_fields", lim.max_header_fields
                        )
                    )
                field_name = m.group(0)[:-1].rstrip(b" \t").lower()
                field_len = len(line)
                field_ew = line.count(b"=?")
                value = [line[m.end() :]] if field_name in _PARAM_FIELDS else []
                if field_name == b"content-type":
                    ctype = value
            if field_len > lim.max_header_field_bytes:
                raise LimitExceeded(
                    size_refusal(
                        "a header field is too large",
                        "max_header_field_bytes",
                        lim.max_header_field_bytes,
                    )
                )
            pos = nl + 2
        self._end_field(field_name, field_len, field_ew, value)
        return self._section(end_of_raw, ctype)

    def _end_field(self, name: bytes, length: int, ew: int, value: list[bytes]) -> None:
        if not name:
            return
        lim = self.lim
        if ew > lim.max_encoded_words_per_field:
            raise LimitExceeded(
                structure_refusal(
                    "too many encoded-words in one header field",
                    "max_encoded_words_per_field",
                    lim.max_encoded_words_per_field,
                )
            )
        self.encoded_words += ew
        if self.encoded_words > lim.max_encoded_words:
            raise LimitExceeded(
                structure_refusal(
                    "too many encoded-words in the headers",
                    "max_encoded_words",
                    lim.max_encoded_words,
                )
            )
        if name in _PARAM_FIELDS:
            # Counting separators over-counts a ';' inside a quoted value, which no real
            # message has dozens of; an RFC 2231 flood has thousands.
            params = sum(line.count(b";") for line in value)
            if params > lim.max_mime_params_per_field:
                raise LimitExceeded(
                    structure_refusal(
                        "too many MIME parameters in one header field",
                        "max_mime_params_per_field",
                        lim.max_mime_params_per_field,
                    )
                )
            self.params += params
            if self.params > lim.max_mime_params:
                raise LimitExceeded(
                    structure_refusal(
                        "too many MIME parameters", "max_mime_params", lim.max_mime_params
                    )
                )

    def _section(self, body: int, ctype: list[bytes]) -> _Section:
        value = b" ".join(part.strip() for part in ctype)
        maintype = value.split(b"/", 1)[0].strip().lower() if value else b"text"
        boundary = None
        if maintype == b"multipart":
            m = _BOUNDARY.search(value)
            if m is not None:
                boundary = (m.group(1) if m.group(1) is not None else m.group(2)) or None
        return _Section(body, maintype, boundary)

    # -- bodies --------------------------------------------------------------------------
    def pattern(self, boundaries: tuple[bytes, ...]) -> re.Pattern[bytes]:
        """One pattern for every delimiter line of the open boundaries (innermost first,
        as the stdlib's parser tests them): C-speed search instead of a Python loop over
        body lines."""
        pat = self._patterns.get(boundaries)
        if pat is None:
            alts = b"|".join(re.escape(b) for b in sorted(set(boundaries), key=len, reverse=True))
            pat = re.compile(rb"(?:^|\r\n)--(" + alts + rb")(--)?[ \t]*(?=\r\n|$)")
            if len(self._patterns) < _CACHE_MAX:
                self._patterns[boundaries] = pat
        return pat

    def run(self) -> None:
        lim = self.lim
        raw = self.raw
        # (boundary, depth) of every open multipart, innermost last
        stack: list[tuple[bytes, int]] = []
        pos, depth = 0, 0
        while True:
            sec = self.header_section(pos, tuple(b for b, _ in stack))
            self.parts += 1
            if self.parts > lim.max_parts:
                raise LimitExceeded(
                    structure_refusal("too many MIME parts", "max_parts", lim.max_parts)
                )
            if depth > lim.max_depth:
                raise LimitExceeded(
                    structure_refusal("MIME parts nested too deeply", "max_depth", lim.max_depth)
                )
            pos = sec.body
            if sec.maintype == b"message":  # an attached message: its headers follow
                depth += 1
                continue
            if sec.boundary is not None:
                stack.append((sec.boundary, depth))
                if len(stack) > lim.max_depth:
                    raise LimitExceeded(
                        structure_refusal(
                            "too many open multipart boundaries", "max_depth", lim.max_depth
                        )
                    )
            # find the next delimiter of any open boundary
            while stack:
                pat = self.pattern(tuple(b for b, _ in stack))
                m = pat.search(raw, max(0, pos - 2))
                if m is None:
                    return  # unclosed boundaries run to the end: nothing more to count
                found, closing = m.group(1), m.group(2) is not None
                # a delimiter of an outer boundary closes every inner one
                while stack and stack[-1][0] != found:
                    stack.pop()
                line_end = m.end() + 2
                pos = line_end
                if closing:
                    stack.pop()
                    continue
                depth = stack[-1][1] + 1
                break
            else:
                return


def check(raw: bytes, limits: StructureLimits) -> Reply | None:
    """The refusal for the first structural limit ``raw`` exceeds, or None.

    Assumes CRLF line endings (bare CR/LF is refused before this runs)."""
    try:
        _Scan(raw, limits).run()
    except LimitExceeded as err:
        return err.reply
    return None
