"""Normalised text with an offset map back to the original, built in bulk.

Detection runs on NFKC text without format characters (U+200B, U+2060 ...) and with
spelled-out digits turned into digits, so ``kamome.support＠gmail.com`` and
``null-eins-fünf-neun 328`` look like what they are. Redaction must cut the *original*
span, hence the map from every normalised character back to where it came from.

Why no loop over characters: a 166 KB Outlook message spent two thirds of its policy time
in one. Characters that map to one character (full-width forms, dashes, no-break spaces)
are replaced by one ``str.translate`` and keep their offsets; only characters that vanish
(format characters, soft hyphens) or expand (``ﬁ`` -> ``fi``) become *edits*, found by one
regex, and the map is a short list of segments between edits (searched with bisect)
instead of one entry per character. Mapping is per character, as NFKC of each character.
"""

from __future__ import annotations

import bisect
import functools
import re
import unicodedata
from dataclasses import dataclass

import regex

_DASHES = dict.fromkeys(map(ord, "\u2010\u2011\u2012\u2013\u2014\u2212\ufe63\uff0d"), "-")
_SPACES = "\u00a0\u202f\u2007\u3000"
_NON_ASCII = regex.compile(r"[^\x00-\x7f]")


@functools.lru_cache(maxsize=65536)
def _mapped(ch: str) -> str:
    """What one non-ASCII character becomes in the normalised text."""
    if ch == "\u00ad" or unicodedata.category(ch) == "Cf":
        return ""
    if ch in _SPACES:
        return " "
    return unicodedata.normalize("NFKC", ch).translate(_DASHES)


@dataclass(frozen=True)
class OffsetMap:
    """Segments of normalised positions: in segment ``j`` (from ``ks[j]``), character ``k``
    came from base characters ``first .. first + width - 1`` where ``first = ps[j] +
    slope[j] * (k - ks[j])`` (slope 1: copied text; slope 0: one replacement)."""

    ks: tuple[int, ...]
    ps: tuple[int, ...]
    slope: tuple[int, ...]
    width: tuple[int, ...]

    def base(self, k: int) -> tuple[int, int]:
        j = bisect.bisect_right(self.ks, k) - 1
        first = self.ps[j] + self.slope[j] * (k - self.ks[j])
        return first, first + self.width[j] - 1


@dataclass(frozen=True)
class NormText:
    """Normalised ``text``; ``omap`` None means the same offsets as ``parent`` (or as the
    original when there is no parent)."""

    text: str
    omap: OffsetMap | None = None
    parent: NormText | None = None

    def start_of(self, k: int) -> int:
        if self.omap is not None:
            k = self.omap.base(k)[0]
        return k if self.parent is None else self.parent.start_of(k)

    def end_of(self, k: int) -> int:
        if self.omap is not None:
            k = self.omap.base(k)[1]
        return k + 1 if self.parent is None else self.parent.end_of(k)

    def span(self, start: int, end: int) -> tuple[int, int]:
        """Original [start, end) covering normalised [start, end)."""
        if self.omap is None and self.parent is None:
            return start, max(start, end)
        if end <= start:
            return (self.start_of(start) if start < len(self.text) else 0,) * 2
        return self.start_of(start), self.end_of(end - 1)


def apply_edits(base: NormText | str, edits: list[tuple[int, int, str]]) -> NormText:
    """``base`` with each (start, end, replacement) applied (sorted, not overlapping)."""
    src = base if isinstance(base, str) else base.text
    parent = None if isinstance(base, str) else base
    if not edits:
        return NormText(src, None, parent) if parent is not None else NormText(src)
    out: list[str] = []
    ks: list[int] = []
    ps: list[int] = []
    slope: list[int] = []
    width: list[int] = []

    def segment(at: int, source: int, step: int, span: int) -> None:
        ks.append(at)
        ps.append(source)
        slope.append(step)
        width.append(span)

    k = pos = 0
    for a, b, rep in edits:
        if a > pos:
            segment(k, pos, 1, 1)
            out.append(src[pos:a])
            k += a - pos
        if rep:
            one = len(rep) == 1 and b - a == 1
            segment(k, a, 1 if one else 0, 1 if one else b - a)
            out.append(rep)
            k += len(rep)
        pos = b
    if pos < len(src) or not ks:
        segment(k, pos, 1, 1)
        out.append(src[pos:])
    return NormText("".join(out), OffsetMap(tuple(ks), tuple(ps), tuple(slope), tuple(width)),
                    parent)


def normalize(original: str) -> NormText:
    if original.isascii():
        return NormText(original)
    chars = set(_NON_ASCII.findall(original))
    same: dict[int, str] = {}
    edit: dict[str, str] = {}
    for ch in chars:
        m = _mapped(ch)
        if m == ch:
            continue
        if len(m) == 1:
            same[ord(ch)] = m
        else:
            edit[ch] = m
    text = original.translate(same) if same else original
    if not edit:
        return NormText(text)
    rx = regex.compile("[" + "".join(regex.escape(c) for c in edit) + "]")
    return apply_edits(text, [(m.start(), m.end(), edit[m.group()]) for m in rx.finditer(text)])


class DigitWords:
    """Compiled once per policy: the spelled-out digits of all lexicon languages."""

    def __init__(self, words: dict[str, str]) -> None:
        self.words = {k.lower(): v for k, v in words.items()}
        alt = "|".join(sorted(map(regex.escape, self.words), key=len, reverse=True)) or "(?!)"
        pattern = (rf"(?<![\w])(?:(?:{alt})(?:[\s\-,]+(?:{alt}))+(?![\w])"
                   rf"|(?:{alt})(?=[\s\-]+\d))")
        self.run = regex.compile(pattern, regex.IGNORECASE)
        # the words are lower case: on lower-cased text a case-sensitive search is faster
        # (and the stdlib engine runs this alternation about twice as fast as regex)
        self.run_lower = re.compile(pattern)
        self.token = regex.compile(rf"(?:{alt})", regex.IGNORECASE)

    def __call__(self, nt: NormText) -> NormText:
        return digit_words(nt, self)


_NEAR_DIGITS = regex.compile(r"[\s\-]*\d")


def digit_words(nt: NormText, dw: DigitWords) -> NormText:
    """Replace runs of spelled-out digits next to digits (``null-eins-fünf-neun 328``)."""
    words = dw.words
    text = nt.text
    low = text.lower()
    found = dw.run_lower.finditer(low) if len(low) == len(text) else dw.run.finditer(text)
    edits: list[tuple[int, int, str]] = []
    for m in found:
        tokens = list(dw.token.finditer(m.group()))
        near_digits = bool(_NEAR_DIGITS.match(text, m.end(), m.end() + 3))
        if len(tokens) >= 3 or (near_digits and len(tokens) >= 1 and _plausible(m, text)):
            prev = None
            for t in tokens:   # each word becomes its digit; the separators go
                a, b = m.start() + t.start(), m.start() + t.end()
                if prev is not None and a > prev:
                    edits.append((prev, a, ""))
                edits.append((a, b, words[t.group().lower()]))
                prev = b
    if not edits:
        return nt
    return apply_edits(nt, edits)


def _plausible(m: re.Match[str] | regex.Match[str], text: str) -> bool:
    """A single number word before digits only counts inside a longer digit run."""
    tail = regex.match(r"[\s\-]*[\d\s\-]{6,}", text[m.end():m.end() + 20])
    return tail is not None or len(m.group()) > 12
