"""Message-kind rules: what the message *is*, judged on the writer's own text.

These rules read sentences with the multilingual lexicons under ``policies/lexicons``.
They judge the writer's own words only: quoted earlier messages are cut first, so that a
seller's reply is not blamed for what the buyer wrote.
"""

from __future__ import annotations

from dataclasses import dataclass

import regex

from relay.policy import language
from relay.policy.config import Policy
from relay.policy.model import PolicyContext

_QUOTE_HEAD = regex.compile(
    r"^\s*(?:On\b.{0,200}\bwrote:|El\b.{0,200}\bescribió:|Le\b.{0,200}\ba écrit\s?:"
    r"|Am\b.{0,200}\bschrieb\b.{0,100}:|Il\b.{0,200}\bha scritto:|Op\b.{0,200}\bschreef\b.{0,100}:"
    r"|W dniu\b.{0,200}\bnapisał\w*:"
    r"|.{0,120}\d{1,2}:\d{2}.{0,100}(?:wrote|escribió|a écrit|schrieb|"
    r"ha scritto|schreef|napisał\w*)\s?:|-{2,}\s*(?:Original Message|Ursprüngliche Nachricht|"
    r"Message d'origine|Mensaje original|Messaggio originale|Oorspronkelijk bericht)\s*-{2,}"
    r"|(?:From|Van|Von|De|Da|Od|差出人)\s?:\s.+)$",
    regex.MULTILINE | regex.IGNORECASE,
)
_SENT = regex.compile(r"(?<=[.!?。！？])\s+|\n+")


MAX_BODY = 8_000    # a message's kind shows in its first pages; tokens are scanned in full


@dataclass(frozen=True)
class MessageFinding:
    kind: str
    excerpt: str


def own_text(text: str) -> str:
    """The writer's own words: quoted lines and everything after a quote header cut."""
    m = _QUOTE_HEAD.search(text)
    if m:
        text = text[:m.start()]
    return "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith(">"))


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENT.split(text) if s and s.strip()]


class MessageRules:
    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.lex = policy.lexicon

    def judge(self, subject: str, body: str, ctx: PolicyContext) -> list[MessageFinding]:
        body = own_text(body[:MAX_BODY])
        text = f"{subject}\n{body}"
        out: list[MessageFinding] = []
        out += self._off_platform(text)
        if ctx.direction != "seller-to-buyer":
            return out
        out += self._promotional(text)
        out += self._reviews(subject, body, ctx)
        out += self._important(subject, body)
        out += self._thanks_or_confirmation(body, ctx)
        out += self._language(body, ctx)
        return out

    # -- rules --------------------------------------------------------------------------
    def _hit(self, key: str, text: str) -> str | None:
        m = self.lex.search(key, text)
        return m.group() if m else None

    def _off_platform(self, text: str) -> list[MessageFinding]:
        ex = self._hit("off_platform", text)
        return [MessageFinding("off_platform", ex)] if ex else []

    def _promotional(self, text: str) -> list[MessageFinding]:
        """One strong cue (a coupon code, "20% off", an upsell) or two distinct weak ones."""
        ex = self._hit("promotional", text)
        if ex:
            return [MessageFinding("promotional", ex)]
        weak = {m.group().lower() for m in self.lex.finditer("promotional_weak", text)}
        if len(weak) >= 2:
            return [MessageFinding("promotional", ", ".join(sorted(weak))[:80])]
        return []

    def _reviews(self, subject: str, body: str, ctx: PolicyContext) -> list[MessageFinding]:
        out: list[MessageFinding] = []
        text = f"{subject}\n{body}"
        if not (self.lex.search("review_word", text) or self.lex.search("review_request", text)
                or self.lex.search("review_edit", text)):
            return out
        asks = [s for s in sentences(text) if self.lex.search("review_request", s)
                or self.lex.search("review_edit", s)]
        for s in sentences(text):
            if self.lex.search("review_word", s) and self.lex.search("review_incentive", s):
                out.append(MessageFinding("review_incentive", s[:80]))
                break
        positive = self._hit("review_positive", text)
        if not asks and not positive and not self._hit("review_selective", text):
            return out
        rv = self.policy.file.review
        reason = None
        if self._hit("review_edit", text):
            reason = "asks to change a review"
        elif positive:
            reason = "asks for a positive review"
        elif self._hit("review_selective", text) and self._hit("review_word", text):
            reason = "asks only satisfied buyers"
        elif asks and ctx.prior_review_requests >= rv.max_requests:
            reason = "repeat review request"
        elif asks and ctx.days_since_delivery is not None and not (
                rv.window_min_days <= ctx.days_since_delivery <= rv.window_max_days):
            reason = "outside the review window"
        if reason:
            out.append(MessageFinding("review_solicitation", reason))
        return out

    def _important(self, subject: str, body: str) -> list[MessageFinding]:
        tag = self._hit("important_tag", subject)
        if not tag:
            return []
        if self._hit("critical", f"{subject}\n{body}"):
            return []
        return [MessageFinding("important_tag_misuse", tag)]

    def _thanks_or_confirmation(self, body: str, ctx: PolicyContext) -> list[MessageFinding]:
        out = []
        if ctx.thread == "proactive":
            ex = self._hit("shipping_confirmation", body)
            if ex and not self._hit("critical", body):
                out.append(MessageFinding("shipping_confirmation", ex))
        content = self._content_sentences(body)
        if content and any(self.lex.search("thanks", s) for s in content) and all(
                self._filler(s) for s in content):
            out.append(MessageFinding("thank_you_only", content[0][:80]))
        return out

    def _filler(self, sentence: str) -> bool:
        """Thanks, an offer to help or good wishes, with at most a few other words."""
        rest = sentence
        hit = False
        for key in ("thanks", "contact_offer", "well_wishes"):
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

    def _language(self, body: str, ctx: PolicyContext) -> list[MessageFinding]:
        want = ctx.buyer_locale.replace("_", "-").split("-")[0].lower()
        if not want or want not in language.CANDIDATES:
            return []
        cfg = self.policy.file.language
        if language.letters(body) < cfg.min_letters:
            return []
        got, conf, probs = language.detect(body)
        if got != want and conf >= cfg.min_confidence and probs.get(want, 0.0) < 0.01:
            return [MessageFinding("wrong_language", f"written in {got}, buyer reads {want}")]
        return []
