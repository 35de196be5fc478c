"""The ``thank_you_only`` rule (a message kind): every sentence between greeting and sign-
off is thanks, an offer to help or wishes.
"""

from __future__ import annotations

import regex

from relay.policy.detect.view import MessageFinding, MessageView, sentences
from relay.policy.rules.base import MessageRule


class ThankYouOnly(MessageRule):
    """Every sentence between greeting and sign-off is thanks, an offer to help or wishes."""

    kind = "thank_you_only"
    name = "thank_you_only"
    description = ("messages that only say thank you are not allowed")

    def judge(self, view: MessageView) -> list[MessageFinding]:
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
