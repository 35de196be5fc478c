"""Message-kind rules: what the message *is*, judged on the writer's own text.

These rules read sentences with the multilingual lexicons under ``policies/lexicons``.
They judge the writer's own words only: quoted earlier messages are cut first, so that a
seller's reply is not blamed for what the buyer wrote.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import regex

from relay.policy import intents, language
from relay.policy.config import Lexicon, Policy
from relay.policy.critical import Critical, critical_category
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


class MessageRule(ABC):
    """One message kind: a name (the kind), the directions it binds, and a check."""

    kind: ClassVar[str]
    seller_only: ClassVar[bool] = True

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.lex = policy.lexicon

    def hit(self, key: str, text: str) -> str | None:
        m = self.lex.search(key, text)
        return m.group() if m else None

    @abstractmethod
    def check(self, view: MessageView) -> list[MessageFinding]:
        """The findings of this kind in ``view``; empty when the message is fine."""


class OffPlatform(MessageRule):
    """Paying, ordering or talking outside the marketplace (binds buyers too)."""

    kind = "off_platform"
    seller_only = False

    def check(self, view: MessageView) -> list[MessageFinding]:
        ex = self.hit("off_platform", view.text)
        return [MessageFinding(self.kind, ex)] if ex else []


class Promotional(MessageRule):
    """One strong cue (a coupon code, "20% off", an upsell) or two distinct weak ones."""

    kind = "promotional"

    def check(self, view: MessageView) -> list[MessageFinding]:
        ex = self.hit("promotional", view.text) or self.hit(
            "upsell", view.text[:intents.MAX_CHARS])
        if ex:
            return [MessageFinding(self.kind, ex)]
        weak = {m.group().lower() for m in self.lex.finditer("promotional_weak", view.text)}
        if len(weak) >= 2:
            return [MessageFinding(self.kind, ", ".join(sorted(weak))[:80])]
        return []


def _mentions_reviews(lex: Lexicon, text: str) -> bool:
    return bool(lex.search("review_word", text) or lex.search("review_request", text)
                or lex.search("review_edit", text)
                or lex.search("review_target", text[:intents.MAX_CHARS]))


class ReviewIncentive(MessageRule):
    """A review is asked for, and something of value is offered in a sentence about it."""

    kind = "review_incentive"

    def check(self, view: MessageView) -> list[MessageFinding]:
        if not view.reviews:
            return []
        acts = view.acts
        asks = (acts.has("review_request") or acts.has("review_positive")
                or acts.has("review_edit") or acts.near("happy_condition", "review_target")
                is not None)
        if not asks:
            return []
        for i, slots in enumerate(acts.slots):
            if "review_incentive" in slots and (
                    "review_target" in slots or "review_edit" in slots):
                return [MessageFinding(self.kind, acts.sentences[i][:80])]
        # a refund or gift in one sentence, "then change your rating" in the next
        i = acts.near("review_incentive", "review_edit")
        if i is not None:
            return [MessageFinding(self.kind, acts.sentences[i][:80])]
        return []


class ReviewSolicitation(MessageRule):
    """Positive-only, selective, edit-your-review, repeat or out-of-window requests."""

    kind = "review_solicitation"

    def check(self, view: MessageView) -> list[MessageFinding]:
        text, ctx = view.text, view.ctx
        if not view.reviews:
            return []
        asks = [s for s in sentences(text) if self.lex.search("review_request", s)
                or self.lex.search("review_edit", s)]
        positive = self.hit("review_positive", text)
        acts = view.acts
        gating = (acts.near("happy_condition", "review_target") is not None
                  or (acts.has("review_target") and acts.has("contact_first")
                      and (acts.has("unhappy_condition") or acts.has("happy_condition"))))
        if not asks and not positive and not self.hit("review_selective", text) and not gating:
            return []
        rv = self.policy.file.review
        acts = view.acts
        reason = None
        if self.hit("review_edit", text):
            reason = "asks to change a review"
        elif positive:
            reason = "asks for a positive review"
        elif self.hit("review_selective", text) and self.hit("review_word", text):
            reason = "asks only satisfied buyers"
        elif acts.near("happy_condition", "review_target") is not None:
            reason = "asks only satisfied buyers"
        elif (acts.near("unhappy_condition", "contact_first", 0) is not None
              or (acts.has("contact_first") and acts.has("happy_condition"))):
            reason = "asks unhappy buyers to write first"
        elif asks and ctx.prior_review_requests >= rv.max_requests:
            reason = "repeat review request"
        elif asks and ctx.days_since_delivery is not None and not (
                rv.window_min_days <= ctx.days_since_delivery <= rv.window_max_days):
            reason = "outside the review window"
        if reason:
            return [MessageFinding(self.kind, reason)]
        # The one allowed request is still recorded: the relay counts delivered requests
        # per order (prior_review_requests) from these findings in the archive.
        return [MessageFinding(self.kind, "neutral review request", allowed=True)] if asks else []


class ImportantTagMisuse(MessageRule):
    """``[Important]`` in the subject of a message with nothing critical in it."""

    kind = "important_tag_misuse"

    def check(self, view: MessageView) -> list[MessageFinding]:
        tag = self.hit("important_tag", view.subject)
        if not tag or critical_category(self.lex, view.text):  # relay.policy.critical
            return []
        return [MessageFinding(self.kind, tag)]


class ShippingConfirmation(MessageRule):
    """A proactive order or shipping confirmation (the marketplace already sends one)."""

    kind = "shipping_confirmation"

    def check(self, view: MessageView) -> list[MessageFinding]:
        if view.ctx.thread != "proactive":
            return []
        ex = self.hit("shipping_confirmation", view.body)
        if ex and not self.hit("critical", view.body):
            return [MessageFinding(self.kind, ex)]
        return []


class ThankYouOnly(MessageRule):
    """Every sentence between greeting and sign-off is thanks, an offer to help or wishes."""

    kind = "thank_you_only"

    def check(self, view: MessageView) -> list[MessageFinding]:
        content = self._content_sentences(view.body)
        if content and len(content) <= 12 and all(self._filler(s) for s in content) and any(
                self.lex.search("thanks", s) or self.lex.search("contact_offer", s)
                or self.lex.search("courtesy", s) for s in content):
            return [MessageFinding(self.kind, content[0][:80])]
        return []

    def _filler(self, sentence: str) -> bool:
        """Thanks, an offer to help or good wishes, with at most a few other words."""
        rest = sentence
        hit = False
        for key in ("thanks", "contact_offer", "well_wishes", "courtesy"):
            pat = self.lex.patterns.get(key)
            if pat is not None:
                rest, n = pat.subn(" ", rest)
                hit |= n > 0
        return hit and len(regex.findall(r"\w+", rest)) <= 5

    def _content_sentences(self, body: str) -> list[str]:
        """Sentences minus the greeting line and the sign-off block."""
        lines = [ln.strip() for ln in body.splitlines() if ln.strip()]
        if lines and len(lines[0]) <= 60 and regex.search(r"[,:!]$|様$|御中$", lines[0]):
            lines = lines[1:]
        while lines and len(lines[-1]) <= 40 and not regex.search(r"[.?!。？]$", lines[-1]) \
                and not regex.search(r"\d", lines[-1]):
            lines = lines[:-1]
        while lines and len(lines[-1]) <= 40 and regex.fullmatch(
                r"[\w\s,'’\-]*[,!]?", lines[-1]) and not self.lex.search("thanks", lines[-1]):
            lines = lines[:-1]
        return sentences("\n".join(lines))


class WrongLanguage(MessageRule):
    """Seller text not in the buyer's preferred language (offline language id)."""

    kind = "wrong_language"

    def check(self, view: MessageView) -> list[MessageFinding]:
        want = view.ctx.buyer_locale.replace("_", "-").split("-")[0].lower()
        if not want or want not in language.CANDIDATES:
            return []
        cfg = self.policy.file.language
        if language.letters(view.body) < cfg.min_letters:
            return []
        got, conf, probs = language.detect(view.body)
        if got != want and conf >= cfg.min_confidence and probs.get(want, 0.0) < 0.01:
            return [MessageFinding(self.kind, f"written in {got}, buyer reads {want}")]
        if (conf < cfg.hold_below and probs.get(want, 0.0) < 0.5
                and language.prose_letters(view.body) >= 2 * cfg.min_letters):
            # no language stands out: neither "right" nor "wrong" can be claimed
            return [MessageFinding(self.kind, f"language not identified (best {got} "
                                              f"{conf:.2f})", undecided=True)]
        return []


MESSAGE_RULES: tuple[type[MessageRule], ...] = (
    OffPlatform, Promotional, ReviewIncentive, ReviewSolicitation, ImportantTagMisuse,
    ShippingConfirmation, ThankYouOnly, WrongLanguage,
    Critical,  # type: ignore[list-item]  # its own file, MessageRule's shape
)


class MessageRules:
    """All message-kind rules of one policy, run in a fixed order."""

    def __init__(self, policy: Policy) -> None:
        self.lex = policy.lexicon
        self.rules = [cls(policy) for cls in MESSAGE_RULES]

    def judge(self, subject: str, body: str, ctx: PolicyContext,
              attached: str = "") -> list[MessageFinding]:
        own = own_text(body[:MAX_BODY])
        attached = attached[:MAX_BODY]
        seller = ctx.direction == "seller-to-buyer"
        reviews = seller and _mentions_reviews(self.lex, f"{subject}\n{own}\n{attached}")
        view = MessageView(subject, own, ctx, reviews, self.lex, attached)
        out: list[MessageFinding] = []
        for rule in self.rules:
            if rule.seller_only and ctx.direction != "seller-to-buyer":
                continue
            out += rule.check(view)
        return out
