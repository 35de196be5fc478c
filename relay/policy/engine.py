"""The policy engine: decode every part, run the rules, decide, and redact a copy.

``evaluate`` is pure and CPU-bound; all state is built in ``load`` and never mutated, so
one engine can serve many threads. It never raises: a message it cannot judge safely is
refused with a plain reason.
"""

from __future__ import annotations

import logging
import pathlib
from dataclasses import dataclass, field
from email.message import Message

import regex

from relay.policy import attachments, doctext, mime
from relay.policy.config import MESSAGE_KINDS, TOKEN_KINDS, Policy, PolicyError, load_policy
from relay.policy.htmlpart import MAX_HTML_DEPTH, HtmlJudge, nesting_depth
from relay.policy.markers import marker
from relay.policy.messages import MessageRules
from relay.policy.model import Finding, PolicyContext, Verdict, strongest
from relay.policy.rules import RULES, describe_rules
from relay.policy.textscan import TextScanner

__all__ = ["PolicyEngine", "PolicyError"]
log = logging.getLogger("relay.policy")

_CONTENT_HEADERS = ("Subject", "Thread-Topic", "Comments", "Keywords", "Summary")
_NESTED_HEADERS = ("From", "To", "Cc", "Bcc", "Reply-To", "Sender", "Subject", "Organization",
                   "Thread-Topic", "Comments", "Keywords", "Return-Path")


@dataclass
class _Run:
    """Mutable scratch state of one evaluation (never shared between calls)."""

    ctx: PolicyContext
    findings: list[Finding] = field(default_factory=list)
    changed: bool = False
    subject: str = ""
    plain: list[str] = field(default_factory=list)
    html_text: list[str] = field(default_factory=list)
    text_bytes: int = 0
    to_read: list[tuple[Message, Message | None, str, str]] = field(default_factory=list)
    attached: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


class PolicyEngine:
    """Judges messages against one loaded policy; immutable after ``load``."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.scanner = TextScanner(policy)
        self.html = HtmlJudge(self.scanner)
        self.messages = MessageRules(policy)
        self._decorative = regex.compile(policy.file.attachments.decorative_names)
        self._allowed_types = frozenset(policy.file.attachments.allowed)
        self._dangerous_types = frozenset(policy.file.attachments.dangerous)

    @classmethod
    def load(cls, path: pathlib.Path | None = None) -> PolicyEngine:
        """Load and validate a policy file (None: the shipped default)."""
        return cls(load_policy(path))

    def describe(self) -> list[dict]:
        return describe_rules(self.policy)

    # -- evaluation ---------------------------------------------------------------------
    def evaluate(self, raw: bytes, ctx: PolicyContext) -> Verdict:
        try:
            return self._evaluate(raw, ctx)
        except mime.Refused as why:
            return Verdict("reject", (), None, f"Message refused by rule structure: {why}")
        except RecursionError:
            return Verdict("reject", (), None,
                           "Message refused by rule structure: the message is nested too deeply")
        except MemoryError:  # over the message's memory budget: relay.policy_pool refuses it
            raise
        except Exception:
            log.exception("policy.evaluate.failed")
            return Verdict("reject", (), None,
                           "Message refused by rule structure: the message could not be checked")

    def _evaluate(self, raw: bytes, ctx: PolicyContext) -> Verdict:
        limits = self.policy.file.limits
        mime.precheck(raw, limits)
        msg = mime.parse(raw)
        entities = list(mime.walk(msg, limits))
        run = _Run(ctx)
        self._precount(entities)
        self._headers(msg, _CONTENT_HEADERS, run, top=True)
        total = 0
        for ent in entities:
            part = ent.part
            if ent.nested_headers:
                self._headers(part, _NESTED_HEADERS, run, top=False)
            if part.is_multipart():
                continue
            if mime.is_attachment(part):
                total += self._attachment(part, ent.parent, run)
            elif part.get_content_type() == "text/html":
                self._html(part, run, ent.forwarded)
            else:
                self._text(part, run, "body.text", ent.forwarded)
        if total > limits.max_attachment_bytes:
            kind = "attachment_too_large"
            self._add(run, kind, RULES[kind].name, "attachment:*", f"{total} bytes")
        if run.to_read and not any(f.action == "reject" for f in run.findings):
            self._read_attachments(run)
        plain, html = "\n".join(run.plain), "\n".join(run.html_text)
        # the text part, unless it is a stub of an HTML-first message
        body = plain if len(plain.strip()) * 2 >= len(html.strip()) else html
        for mf in self.messages.judge(run.subject, body, ctx, "\n".join(run.attached)):
            self._add(run, mf.kind, mf.kind, "body.text", mf.excerpt, mf.allowed,
                      "hold" if mf.undecided else None)
        return self._verdict(msg, raw, run)

    def _verdict(self, msg: Message, raw: bytes, run: _Run) -> Verdict:
        findings = tuple(run.findings)
        action = strongest([f.action for f in findings])
        if action == "reject":
            first = next(f for f in findings if f.action == "reject")
            return Verdict("reject", findings, None, self.reason(first), run.timings)
        if action == "hold":
            first = next(f for f in findings if f.action == "hold")
            out = mime.to_bytes(msg) if run.changed else raw
            return Verdict("hold", findings, out, self.reason(first, held=True), run.timings)
        if action == "redact" and run.changed:
            return Verdict("redact", findings, mime.to_bytes(msg), "", run.timings)
        return Verdict(action, findings, raw, "", run.timings)

    def reason(self, f: Finding, held: bool = False) -> str:
        if held:
            return f"Message held for review by rule {f.rule}: the policy could not decide"
        rule = RULES.get(f.kind)
        text = rule.description if rule else "content not allowed"
        return f"Message refused by rule {f.rule}: {text}"

    # -- pieces -------------------------------------------------------------------------
    def _add(self, run: _Run, kind: str, rule: str, where: str, excerpt: str,
             allowed: bool = False, action: str | None = None) -> Finding:
        if action is None:
            action = "allow" if allowed else getattr(self.policy.file.actions, kind, "redact")
        f = Finding(kind, rule, action, where, excerpt[:200])
        run.findings.append(f)
        return f

    def _redact(self, text: str, where: str, run: _Run) -> str:
        hits = self.scanner.scan(text, run.ctx)
        out, last = [], 0
        for h in hits:
            f = self._add(run, h.kind, h.rule, where, h.excerpt, h.allowed)
            if f.action != "redact" or not h.cut:
                continue
            out.append(text[last:h.start])
            out.append(marker(h.kind))
            last = h.end
        out.append(text[last:])
        return "".join(out)

    def _headers(self, part: Message, names: tuple[str, ...], run: _Run, top: bool) -> None:
        for name in names:
            values = mime.header_text(part, name)
            if not values:
                continue
            where = "subject" if name == "Subject" and top else f"header:{name}"
            new = [self._redact(v, where, run) for v in values]
            if top and name == "Subject":
                run.subject = values[0]
            if new != values:
                new = [" ".join(v.split()) for v in new]
                if len(new) == 1:
                    part.replace_header(name, new[0])
                else:
                    del part[name]
                    for v in new:
                        part[name] = v
                run.changed = True

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

    def _budget(self, run: _Run, size: int) -> None:
        """Text is what costs CPU: refuse what cannot be read in full within the budget."""
        limits = self.policy.file.limits
        run.text_bytes += size
        if run.text_bytes > limits.max_total_text_bytes:
            raise mime.Refused("the message has too much text to check")

    def _text(self, part: Message, run: _Run, where: str, forwarded: bool = False) -> None:
        limit = self.policy.file.limits.max_text_bytes
        text = mime.text_of(part, limit + 1)
        if len(text) > limit:
            raise mime.Refused("a text part is too large to check")
        self._budget(run, len(text))
        if where == "body.text" and not forwarded:   # message rules read the writer's words
            run.plain.append(text)
        new = self._redact(text, where, run)
        if new != text:
            mime.set_text(part, new)
            run.changed = True

    def _html(self, part: Message, run: _Run, forwarded: bool = False) -> None:
        limits = self.policy.file.limits
        src = mime.text_of(part, limits.max_html_bytes + 1)
        if len(src) > limits.max_html_bytes:
            raise mime.Refused("an HTML part is too large to check")
        self._budget(run, len(src))
        if nesting_depth(src) > MAX_HTML_DEPTH:
            raise mime.Refused(f"an HTML part nests elements deeper than {MAX_HTML_DEPTH} levels")
        res = self.html.judge(src, run.ctx)
        if not forwarded:
            run.html_text.append(res.text)
        redact = False
        for h in res.hits:
            f = self._add(run, h.kind, h.rule, "body.html", h.excerpt, h.allowed)
            redact |= f.action == "redact"
        if res.html is not None and redact:
            mime.set_text(part, res.html)
            run.changed = True

    def _attachment(self, part: Message, parent: Message | None, run: _Run) -> int:
        name = mime.filename_of(part)
        where = f"attachment:{name or part.get_content_type()}"
        data = mime.payload_bytes(part)
        if name:
            # underscores separate words in file names: scan them as spaces (same length)
            new = self._redact(name.replace("_", " "), where, run)
            if new == name.replace("_", " "):
                new = name
            if new != name:
                part.set_param("filename", new, header="Content-Disposition")
                if part.get_param("name"):
                    part.set_param("name", new)
                run.changed = True
        j = attachments.judge(name, part.get_content_type(), data,
                              allowed=self._allowed_types, dangerous=self._dangerous_types)
        if (j.kind is None and run.ctx.direction == "seller-to-buyer"
                and part.get_content_maintype() == "image"
                and self._decorative.search(name.rsplit(".", 1)[0])):
            j = attachments.AttachmentJudgement("attachment_removed", "decorative image")
        if j.kind is None:
            if part.get_content_maintype() == "text" and j.real in ("text", "csv"):
                self._text(part, run, where)
            elif j.real in doctext.READABLE:
                run.to_read.append((part, parent, j.real, where))
            return len(data)
        if j.kind == "image_metadata":
            run.to_read.append((part, parent, j.real, where))
        f = self._add(run, j.kind, RULES[j.kind].name, where, j.detail)
        if f.action != "redact":
            return len(data)
        if j.kind == "image_metadata" and j.cleaned is not None:
            mime.set_bytes(part, j.cleaned)
            run.changed = True
        elif j.kind == "attachment_removed" and parent is not None:
            mime.remove_part(parent, part)
            run.changed = True
        return len(data)

    def _read_attachments(self, run: _Run) -> None:
        """Attachment text judged by the body's token rules; an attachment carrying a
        redactable token goes (with a marker), its text still counts for message kinds."""
        cfg = self.policy.file.reading
        if not cfg.enabled:
            return
        budget = doctext.Budget(max_bytes=cfg.max_bytes, max_chars=cfg.max_chars,
                                max_pages=cfg.max_pages, doc_seconds=cfg.doc_seconds,
                                ocr_seconds=cfg.ocr_seconds)
        for part, parent, real, where in run.to_read:
            res = doctext.read(real, mime.payload_bytes(part), budget,
                               locale=run.ctx.buyer_locale, ocr=cfg.ocr,
                               min_confidence=cfg.ocr_min_confidence)
            if res.undecided and cfg.hold_unreadable:
                self._add(run, "attachment_removed", "attachment.unreadable", where,
                          res.undecided, action="hold")
            if not res.text.strip():
                continue
            run.attached.append(res.text)
            remove = False
            for h in self.scanner.scan(res.text, run.ctx, emoji=False):
                f = self._add(run, h.kind, h.rule, where, h.excerpt, h.allowed)
                remove |= f.action == "redact"
            if remove and parent is not None:
                mime.remove_part(parent, part)
                run.changed = True
        run.timings = {"doc_ms": round(budget.spent_doc * 1000, 1),
                       "ocr_ms": round(budget.spent_ocr * 1000, 1)}


assert set(TOKEN_KINDS) | set(MESSAGE_KINDS) == set(RULES)
