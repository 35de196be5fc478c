"""Read a message once into its :class:`~relay.policy.detect.document.Document`.

One pass over the MIME tree (relay.policy.mime: limits first, encoded ``message/*``
decoded), in order: content headers, text parts, HTML parts (relay.policy.detect.html: the
tree parsed once, hidden text and remote resources found on it), attachments (the real
type from the bytes, relay.policy.attachments) and, unless the message is already
refused, their text (relay.policy.doctext, within the ``[reading]`` budget). Every text is
normalised and scanned for tokens once (relay.policy.detect.tokens) and what is found is
recorded with the span it came from.

Where a found token's action is ``redact`` the cut is written back into the MIME tree
here, while the text and its offset map are in hand (the HTML cut crosses text nodes);
the rules then read the records and the engine decides.
"""

from __future__ import annotations

from email.message import Message

import regex

from relay.policy import attachments, doctext, mime
from relay.policy.config import Policy
from relay.policy.detect.document import Document, Span
from relay.policy.detect.html import MAX_HTML_DEPTH, HtmlJudge, nesting_depth
from relay.policy.detect.tokens import TextScanner
from relay.policy.markers import marker
from relay.policy.model import PolicyContext

_CONTENT_HEADERS = ("Subject", "Thread-Topic", "Comments", "Keywords", "Summary")
_NESTED_HEADERS = ("From", "To", "Cc", "Bcc", "Reply-To", "Sender", "Subject", "Organization",
                   "Thread-Topic", "Comments", "Keywords", "Return-Path")


class Reader:
    """Bound to one policy; stateless between messages (all state is in the Document)."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.scanner = TextScanner(policy)
        self.html = HtmlJudge(self.scanner)
        self._decorative = regex.compile(policy.file.attachments.decorative_names)
        self._allowed_types = frozenset(policy.file.attachments.allowed)
        self._dangerous_types = frozenset(policy.file.attachments.dangerous)

    def read(self, raw: bytes, ctx: PolicyContext) -> Document:
        limits = self.policy.file.limits
        mime.precheck(raw, limits)
        msg = mime.parse(raw)
        entities = list(mime.walk(msg, limits))
        doc = Document(ctx, self.policy, msg)
        self._precount(entities)
        self._headers(msg, _CONTENT_HEADERS, doc, top=True)
        for ent in entities:
            part = ent.part
            if ent.nested_headers:
                self._headers(part, _NESTED_HEADERS, doc, top=False)
            if part.is_multipart():
                continue
            if mime.is_attachment(part):
                doc.attachment_bytes += self._attachment(part, ent.parent, doc)
            elif part.get_content_type() == "text/html":
                self._html(part, doc, ent.forwarded)
            else:
                self._text(part, doc, "body.text", ent.forwarded)
        doc.attachments_seq = doc.next_seq()
        too_large = (doc.attachment_bytes > limits.max_attachment_bytes
                     and self.policy.action("attachment_too_large") == "reject")
        refused = too_large or any(doc.action_of(r) == "reject" for r in doc.records)
        if doc.pending and not refused:
            self._read_attachments(doc)
        return doc

    # -- text ---------------------------------------------------------------------------
    def _redact(self, text: str, where: str, doc: Document) -> str:
        hits = self.scanner.scan(text, doc.ctx)
        doc.spans.append(Span(where, text, tuple(h.kind for h in hits)))
        out, last = [], 0
        for h in hits:
            action = doc.record(h.kind, where, h.excerpt, h.allowed, rule=h.rule)
            if action != "redact" or not h.cut:
                continue
            out.append(text[last:h.start])
            out.append(marker(h.kind))
            last = h.end
        out.append(text[last:])
        return "".join(out)

    def _headers(self, part: Message, names: tuple[str, ...], doc: Document, top: bool) -> None:
        for name in names:
            values = mime.header_text(part, name)
            if not values:
                continue
            where = "subject" if name == "Subject" and top else f"header:{name}"
            new = [self._redact(v, where, doc) for v in values]
            if top and name == "Subject":
                doc.subject = values[0]
            if new != values:
                new = [" ".join(v.split()) for v in new]
                if len(new) == 1:
                    part.replace_header(name, new[0])
                else:
                    del part[name]
                    for v in new:
                        part[name] = v
                doc.changed = True

    def _precount(self, entities: list[mime.Entity]) -> None:
        """Refuse before scanning anything when the text alone is over the CPU budget."""
        total = 0
        for ent in entities:
            part = ent.part
            if part.is_multipart() or part.get_content_maintype() != "text":
                continue
            payload = part.get_payload()
            size = len(payload) if isinstance(payload, str | bytes) else 0
            if (part.get("Content-Transfer-Encoding") or "").strip().lower() == "base64":
                size = size * 3 // 4
            total += size
        if total > self.policy.file.limits.max_total_text_bytes * 1.1:
            raise mime.Refused("the message has too much text to check")

    def _budget(self, doc: Document, size: int) -> None:
        """Text is what costs CPU: refuse what cannot be read in full within the budget."""
        doc.text_bytes += size
        if doc.text_bytes > self.policy.file.limits.max_total_text_bytes:
            raise mime.Refused("the message has too much text to check")

    def _text(self, part: Message, doc: Document, where: str, forwarded: bool = False) -> None:
        limit = self.policy.file.limits.max_text_bytes
        text = mime.text_of(part, limit + 1)
        if len(text) > limit:
            raise mime.Refused("a text part is too large to check")
        self._budget(doc, len(text))
        if where == "body.text" and not forwarded:   # message rules read the writer's words
            doc.plain.append(text)
        new = self._redact(text, where, doc)
        if new != text:
            mime.set_text(part, new)
            doc.changed = True

    def _html(self, part: Message, doc: Document, forwarded: bool = False) -> None:
        limits = self.policy.file.limits
        src = mime.text_of(part, limits.max_html_bytes + 1)
        if len(src) > limits.max_html_bytes:
            raise mime.Refused("an HTML part is too large to check")
        self._budget(doc, len(src))
        if nesting_depth(src) > MAX_HTML_DEPTH:
            raise mime.Refused(f"an HTML part nests elements deeper than {MAX_HTML_DEPTH} levels")
        res = self.html.judge(src, doc.ctx)
        if not forwarded:
            doc.html_text.append(res.text)
        doc.spans.append(Span("body.html", res.text, tuple(h.kind for h in res.hits)))
        redact = False
        for h in res.hits:
            action = doc.record(h.kind, "body.html", h.excerpt, h.allowed, rule=h.rule)
            redact |= action == "redact"
        if res.html is not None and redact:
            mime.set_text(part, res.html)
            doc.changed = True

    # -- attachments --------------------------------------------------------------------
    def _attachment(self, part: Message, parent: Message | None, doc: Document) -> int:
        name = mime.filename_of(part)
        where = f"attachment:{name or part.get_content_type()}"
        data = mime.payload_bytes(part)
        if name:
            # underscores separate words in file names: scan them as spaces (same length)
            new = self._redact(name.replace("_", " "), where, doc)
            if new == name.replace("_", " "):
                new = name
            if new != name:
                part.set_param("filename", new, header="Content-Disposition")
                if part.get_param("name"):
                    part.set_param("name", new)
                doc.changed = True
        j = attachments.judge(name, part.get_content_type(), data,
                              allowed=self._allowed_types, dangerous=self._dangerous_types)
        if (j.kind is None and doc.ctx.direction == "seller-to-buyer"
                and part.get_content_maintype() == "image"
                and self._decorative.search(name.rsplit(".", 1)[0])):
            j = attachments.AttachmentJudgement("attachment_removed", "decorative image")
        if j.kind is None:
            if part.get_content_maintype() == "text" and j.real in ("text", "csv"):
                self._text(part, doc, where)
            elif j.real in doctext.READABLE:
                doc.pending.append((part, parent, j.real, where))
            return len(data)
        if j.kind == "image_metadata":
            doc.pending.append((part, parent, j.real, where))
        action = doc.record(j.kind, where, j.detail)
        if action != "redact":
            return len(data)
        if j.kind == "image_metadata" and j.cleaned is not None:
            mime.set_bytes(part, j.cleaned)
            doc.changed = True
        elif j.kind == "attachment_removed" and parent is not None:
            mime.remove_part(parent, part)
            doc.changed = True
        return len(data)

    def _read_attachments(self, doc: Document) -> None:
        """Attachment text judged by the body's token rules; an attachment carrying a
        redactable token goes (with a marker), its text still counts for message kinds."""
        cfg = self.policy.file.reading
        if not cfg.enabled:
            return
        budget = doctext.Budget(max_bytes=cfg.max_bytes, max_chars=cfg.max_chars,
                                max_pages=cfg.max_pages, doc_seconds=cfg.doc_seconds,
                                ocr_seconds=cfg.ocr_seconds)
        for part, parent, real, where in doc.pending:
            res = doctext.read(real, mime.payload_bytes(part), budget,
                               locale=doc.ctx.buyer_locale, ocr=cfg.ocr,
                               min_confidence=cfg.ocr_min_confidence)
            if res.undecided and cfg.hold_unreadable:
                doc.record("attachment_removed", where, res.undecided, action="hold",
                           rule="attachment.unreadable")
            if not res.text.strip():
                continue
            doc.attached.append(res.text)
            remove = False
            hits = self.scanner.scan(res.text, doc.ctx, emoji=False)
            doc.spans.append(Span(f"{where}#text", res.text, tuple(h.kind for h in hits)))
            for h in hits:
                remove |= doc.record(h.kind, where, h.excerpt, h.allowed, rule=h.rule) == "redact"
            if remove and parent is not None:
                mime.remove_part(parent, part)
                doc.changed = True
        doc.timings = {"doc_ms": round(budget.spent_doc * 1000, 1),
                       "ocr_ms": round(budget.spent_ocr * 1000, 1)}
