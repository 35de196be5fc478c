"""The message view: what message-kind rules read, built once per document.

Message kinds (relay.policy.rules: promotional, review_solicitation ...) judge the
writer's own words only: quoted earlier messages are cut first (:func:`own_text`), so
that a seller's reply is not blamed for what the buyer wrote. The view holds the subject,
that text, the text read out of attachments, and the intent slots (computed on first use).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import regex

from relay.policy import intents
from relay.policy.config import Lexicon
from relay.policy.model import PolicyContext

# Quote headers, judged one short line at a time (a multi-line regex with wide gaps
# backtracks badly on long texts): "On ... wrote:", "Am ... schrieb ...:", "... <a@b>:",
# "-----Original Message-----", "From: ..." and their translations.
_QUOTE_VERB = regex.compile(
    r"\b(?:wrote|escribió|a écrit|schrieb|ha scritto|schreef|napisał\w*(?:\(a\))?)\b"
    r".{0,60}[:：]\s*$", regex.IGNORECASE)
_QUOTE_ADDR = regex.compile(r"<[^>\s]+@[^>\s]+>\s?\S{0,20}[:：]\s*$")
_QUOTE_SEP = regex.compile(
    r"^-{2,}\s*(?:Original Message|Ursprüngliche Nachricht|Message d.origine|Mensaje original|"
    r"Messaggio originale|Oorspronkelijk bericht|Wiadomość oryginalna)\s*-{2,}$", regex.IGNORECASE)
_QUOTE_FROM = regex.compile(r"^(?:From|Van|Von|De|Da|Od|差出人)\s?[:：]\s.+", regex.IGNORECASE)
_SENT = regex.compile(r"(?<=[.!?。！？])\s+|\n+")


MAX_BODY = 8_000    # a message's kind shows in its first pages; tokens are scanned in full


@dataclass(frozen=True)
class MessageFinding:
    kind: str
    excerpt: str
    allowed: bool = False  # recorded, not refused (e.g. the one neutral review request)
    undecided: bool = False  # the rule cannot decide: the message is held for ops


def own_text(text: str) -> str:
    """The writer's own words: quoted lines and everything after a quote header cut."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        s = line.strip()
        if len(s) > 300 or not any(c in s for c in ":：-"):
            continue
        if (_QUOTE_VERB.search(s) or _QUOTE_ADDR.search(s) or _QUOTE_SEP.match(s)
                or _QUOTE_FROM.match(s)):
            lines = lines[:i]
            break
    return "\n".join(ln for ln in lines if not ln.lstrip().startswith(">"))


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENT.split(text) if s and s.strip()]


@dataclass
class MessageView:
    """What message rules read: the subject, the writer's own text, and the context."""

    subject: str
    body: str
    ctx: PolicyContext
    reviews: bool = False      # does the text talk about reviews at all (computed once)
    lex: Lexicon | None = None
    attached: str = ""     # text read out of attachments (judged for content, not tone)

    @functools.cached_property
    def acts(self) -> intents.Intents:
        """Slots per sentence (subject first), computed when a rule first asks: only the
        review rules need them, and only for texts that talk about reviews."""
        if self.lex is None:
            return intents.NONE
        return intents.tag(self.lex, f"{self.subject}\n{self.body}"[:intents.MAX_CHARS])

    @property
    def text(self) -> str:
        if self.attached:
            return f"{self.subject}\n{self.body}\n{self.attached}"
        return f"{self.subject}\n{self.body}"


def mentions_reviews(lex: Lexicon, text: str) -> bool:
    return bool(lex.search("review_word", text) or lex.search("review_request", text)
                or lex.search("review_edit", text)
                or lex.search("review_target", text[:intents.MAX_CHARS]))




def build_view(lex: Lexicon, subject: str, body: str, ctx: PolicyContext,
               attached: str = "") -> MessageView:
    """The view over the first pages of the writer's own text (quotes cut)."""
    own = own_text(body[:MAX_BODY])
    attached = attached[:MAX_BODY]
    seller = ctx.direction == "seller-to-buyer"
    reviews = seller and mentions_reviews(lex, f"{subject}\n{own}\n{attached}")
    return MessageView(subject, own, ctx, reviews, lex, attached)
