"""Intent slots: what each sentence of a message *does*, for the message-kind rules.

Why a grammar over slots and not a keyword per case: a message kind is a combination of
speech acts, usually spread over two sentences, and every act has many wordings. "If you
are happy with the lamp, the product page is where other buyers look. If not, write to us
first." is review gating without one review keyword; what makes it gating is the
*combination* of a condition on the buyer's satisfaction (``happy_condition``) with a
pointer to where reviews go (``review_target``), or of a condition on dissatisfaction
(``unhappy_condition``) with "contact us first" (``contact_first``). Each slot is a
small multilingual vocabulary in ``policies/lexicons/<lang>.toml`` (an operator can extend
it); the rules in :mod:`.messages` combine slots within a sentence or across neighbouring
sentences. Vocabularies generalise across cases (one wording of a slot serves every rule
that uses it), stay auditable (every finding names the slots that fired), and cost one
regex scan per slot over the text, not per sentence.

A trained classifier was considered and not shipped: with no labelled corpus of real
seller messages, it would learn the few hundred sentences we could write ourselves, which
is the lexicon again with less control over false positives.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import regex

from relay.policy.config import Lexicon

SLOTS = ("thanks", "contact_offer", "well_wishes", "courtesy", "happy_condition",
         "unhappy_condition", "contact_first", "review_target", "review_request",
         "review_edit", "review_positive", "review_selective", "review_incentive",
         "promotional", "upsell")
MAX_CHARS = 4000   # what a message is for shows in its first page; slots cost per character
_BOUNDARY = regex.compile(r"(?<=[.!?。！？])\s+|\n+")
# A condition asked as a short question is the "if" clause of the sentence after it:
# "Not happy? Write to us first." = "If you are not happy, write to us first."
CONDITIONS = frozenset({"happy_condition", "unhappy_condition"})
_SHORT_QUESTION = regex.compile(r"^\W*(?:\w+\W+){0,7}\w*\W*[?？]\W*$")


@dataclass(frozen=True)
class Intents:
    """The sentences of a text and the slots found in each."""

    sentences: tuple[str, ...]
    slots: tuple[frozenset[str], ...]

    def where(self, slot: str) -> list[int]:
        return [i for i, s in enumerate(self.slots) if slot in s]

    def has(self, slot: str) -> bool:
        return any(slot in s for s in self.slots)

    def near(self, a: str, b: str, dist: int = 1) -> int | None:
        """Index of a sentence with slot ``a`` within ``dist`` sentences of one with ``b``."""
        bs = self.where(b)
        for i in self.where(a):
            if any(abs(i - j) <= dist for j in bs):
                return i
        return None


NONE = Intents((), ())


def tag(lex: Lexicon, text: str) -> Intents:
    """Split ``text`` into sentences and mark each with the slots whose vocabulary occurs."""
    starts, sents = [], []
    pos = 0
    for m in _BOUNDARY.finditer(text):
        if text[pos:m.start()].strip():
            starts.append(pos)
            sents.append(text[pos:m.start()].strip())
        pos = m.end()
    if text[pos:].strip():
        starts.append(pos)
        sents.append(text[pos:].strip())
    found: list[set[str]] = [set() for _ in sents]
    if sents:
        for slot in SLOTS:
            for hit in lex.finditer(slot, text):
                k = bisect.bisect_right(starts, hit.start()) - 1
                if k >= 0:
                    found[k].add(slot)
        for k in range(len(sents) - 1):
            cond = found[k] & CONDITIONS
            if cond and _SHORT_QUESTION.match(sents[k]):
                found[k + 1] |= cond
    return Intents(tuple(sents), tuple(frozenset(f) for f in found))
