"""Normalised text with an offset map back to the original.

Detection runs on NFKC text without format characters (U+200B, U+2060 ...) and with
spelled-out digits turned into digits, so ``kamome.support＠gmail.com`` and
``null-eins-fünf-neun 328`` look like what they are. Redaction must cut the *original*
span, hence the map: ``orig[i]`` is where normalised character ``i`` came from.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

import regex

_DASHES = dict.fromkeys(map(ord, "\u2010\u2011\u2012\u2013\u2014\u2212\ufe63\uff0d"), "-")


@dataclass(frozen=True)
class NormText:
    """``starts``/``ends`` None means the identity map (nothing needed normalising)."""

    text: str
    starts: tuple[int, ...] | None
    ends: tuple[int, ...] | None

    def span(self, start: int, end: int) -> tuple[int, int]:
        """Original [start, end) covering normalised [start, end)."""
        if self.starts is None or self.ends is None:
            return start, max(start, end)
        if end <= start:
            return (self.starts[start] if start < len(self.starts) else 0,) * 2
        return self.starts[start], self.ends[end - 1]

    def start_of(self, k: int) -> int:
        return k if self.starts is None else self.starts[k]

    def end_of(self, k: int) -> int:
        return k + 1 if self.ends is None else self.ends[k]


_NEEDS = regex.compile(r"[\p{Cf}\u00ad\u00a0\u202f\u2007\u3000\u2010-\u2014\u2212\ufe63\uff0d]")


def normalize(original: str) -> NormText:
    if original.isascii() or (
            not _NEEDS.search(original) and unicodedata.is_normalized("NFKC", original)):
        return NormText(original, None, None)
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    for i, ch in enumerate(original):
        cat = unicodedata.category(ch)
        if cat == "Cf" or ch in "\u00ad":
            continue
        if ch.isascii():
            mapped = ch
        else:
            mapped = unicodedata.normalize("NFKC", ch).translate(_DASHES)
            if ch in "\u00a0\u202f\u2007\u3000":
                mapped = " "
        for m in mapped:
            out.append(m)
            starts.append(i)
            ends.append(i + 1)
    return NormText("".join(out), tuple(starts), tuple(ends))


class DigitWords:
    """Compiled once per policy: the spelled-out digits of all lexicon languages."""

    def __init__(self, words: dict[str, str]) -> None:
        self.words = {k.lower(): v for k, v in words.items()}
        alt = "|".join(sorted(map(regex.escape, self.words), key=len, reverse=True)) or "(?!)"
        pattern = (rf"(?<![\w])(?:{alt})(?:[\s\-,]+(?:{alt}))+(?![\w])"
                   rf"|(?<![\w])(?:{alt})(?=[\s\-]+\d)")
        self.run = regex.compile(pattern, regex.IGNORECASE)
        # the words are lower case: on lower-cased text a case-sensitive search is faster
        self.run_lower = regex.compile(pattern)
        self.token = regex.compile(rf"(?:{alt})", regex.IGNORECASE)

    def __call__(self, nt: NormText) -> NormText:
        return digit_words(nt, self)


def digit_words(nt: NormText, dw: DigitWords) -> NormText:
    """Replace runs of spelled-out digits next to digits (``null-eins-fünf-neun 328``)."""
    words = dw.words
    text = nt.text
    hits = []
    low = text.lower()
    found = dw.run_lower.finditer(low) if len(low) == len(text) else dw.run.finditer(text)
    for m in found:
        tokens = list(dw.token.finditer(m.group()))
        near_digits = bool(regex.match(r"[\s\-]*\d", text[m.end():m.end() + 3]))
        if len(tokens) >= 3 or (near_digits and len(tokens) >= 1 and _plausible(m, text)):
            hits.append((m, tokens))
    if not hits:
        return nt
    out, starts, ends = [], [], []
    pos = 0
    for m, tokens in hits:
        for k in range(pos, m.start()):
            out.append(text[k])
            starts.append(nt.start_of(k))
            ends.append(nt.end_of(k))
        for t in tokens:
            a, b = m.start() + t.start(), m.start() + t.end()
            out.append(words[t.group().lower()])
            starts.append(nt.start_of(a))
            ends.append(nt.end_of(b - 1))
        pos = m.end()
    for k in range(pos, len(text)):
        out.append(text[k])
        starts.append(nt.start_of(k))
        ends.append(nt.end_of(k))
    return NormText("".join(out), tuple(starts), tuple(ends))


def _plausible(m: regex.Match[str], text: str) -> bool:
    """A single number word before digits only counts inside a longer digit run."""
    tail = regex.match(r"[\s\-]*[\d\s\-]{6,}", text[m.end():m.end() + 20])
    return tail is not None or len(m.group()) > 12
