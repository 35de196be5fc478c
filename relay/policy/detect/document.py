"""The document: everything one reading of a message found, shared by every rule.

:mod:`relay.policy.detect.reader` builds it once per message: the MIME tree decoded once,
each text the reader would see as a :class:`Span` (subject and content headers, text
parts, the visible and hidden text of HTML parts, text attributes, attachment names and
the text read out of attachments), normalised once with an offset map back to the
original (relay.policy.detect.normalize), scanned once for tokens, and the
structural observations (HTML resources, attachment types) as records of their kind.
Rules (relay.policy.rules) read it; none walks the MIME tree or the text again.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from email.message import Message

from relay.policy.config import KindAction, Policy
from relay.policy.detect.view import MessageView, build_view
from relay.policy.model import PolicyContext
from relay.policy.rules.base import Record


@dataclass(frozen=True)
class Span:
    """One text as the reader sees it, where it came from, and what was found in it."""

    where: str          # subject, header:From, body.text, body.html, attachment:<name> ...
    text: str
    kinds: tuple[str, ...] = ()


@dataclass
class Document:
    """Built by the reader, then read (never changed) by the rules."""

    ctx: PolicyContext
    policy: Policy
    msg: Message | None = None
    spans: list[Span] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)
    changed: bool = False        # the MIME tree was edited (redactions written back)
    subject: str = ""
    plain: list[str] = field(default_factory=list)       # writer's text parts
    html_text: list[str] = field(default_factory=list)   # writer's HTML, as read
    attached: list[str] = field(default_factory=list)    # text read out of attachments
    attachment_bytes: int = 0
    attachments_seq: int = 0
    text_bytes: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    # attachments whose text is read once the tree is walked: (part, parent, type, where)
    pending: list[tuple[Message, Message | None, str, str]] = field(default_factory=list)

    # -- written by the reader ---------------------------------------------------------
    def record(self, kind: str, where: str, excerpt: str = "", allowed: bool = False,
               action: KindAction | None = None, rule: str = "") -> str:
        """Record a finding of ``kind``; returns the action it will carry."""
        rec = Record(kind, where, excerpt[:200], allowed, action, rule, len(self.records))
        self.records.append(rec)
        return self.action_of(rec)

    def action_of(self, rec: Record) -> KindAction:
        if rec.action is not None:
            return rec.action
        return "allow" if rec.allowed else self.policy.action(rec.kind)

    def next_seq(self) -> int:
        return len(self.records)

    # -- read by the rules -------------------------------------------------------------
    @functools.cached_property
    def _by_kind(self) -> dict[str, list[Record]]:
        out: dict[str, list[Record]] = {}
        for r in self.records:
            out.setdefault(r.kind, []).append(r)
        return out

    def recorded(self, kind: str) -> list[Record]:
        return self._by_kind.get(kind, [])

    @property
    def body(self) -> str:
        """The writer's text: the text part, unless it is a stub of an HTML-first message."""
        plain, html = "\n".join(self.plain), "\n".join(self.html_text)
        return plain if len(plain.strip()) * 2 >= len(html.strip()) else html

    @functools.cached_property
    def view(self) -> MessageView:
        return build_view(self.policy.lexicon, self.subject, self.body, self.ctx,
                          "\n".join(self.attached))
