"""Offline language identification (py3langid ships its model; no network needed).

The model takes ~0.6 s to load, so it is loaded once, lazily, under a lock; classify is
pure and thread-safe afterwards.
"""

from __future__ import annotations

import threading
from typing import Protocol

import regex


class _Identifier(Protocol):
    """What we use of py3langid's LanguageIdentifier (the library has no type information)."""

    def rank(self, text: str) -> list[tuple[str, float]]: ...


_LOCK = threading.Lock()
_IDENT: _Identifier | None = None
CANDIDATES = ["en", "de", "fr", "es", "it", "ja", "pl", "nl", "pt", "sv", "da", "no", "cs",
              "sk", "hu", "ro", "tr", "ru", "zh", "ko", "fi", "el"]
_NOISE = regex.compile(
    r"(?:https?://|www\.)\S+|\S+@\S+|[\w.\-]+\.(?:com|de|fr|es|it|nl|pl|jp)\S*|\d[\d\s.,:/\-]*"
    r"|\b[A-Z0-9]+(?:-[A-Z0-9]+)+\b",
)


def _identifier() -> _Identifier:
    global _IDENT
    if _IDENT is None:
        with _LOCK:
            if _IDENT is None:
                from py3langid.langid import MODEL_FILE, LanguageIdentifier

                ident = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
                ident.set_languages(CANDIDATES)
                _IDENT = ident
    return _IDENT


def warm() -> None:
    """Load the model now (a server calls this at start-up, not on its first message)."""
    _identifier()


def letters(text: str) -> int:
    return len(regex.findall(r"\p{L}", text))


def prose_letters(text: str) -> int:
    """Letters left once links, addresses, codes and numbers are taken out."""
    return letters(_NOISE.sub(" ", text[:4000]))


def detect(text: str) -> tuple[str, float, dict[str, float]]:
    """(language, confidence, all probabilities) of ``text`` without links and codes."""
    clean = _NOISE.sub(" ", text[:4000])    # a few paragraphs identify a language
    if regex.search(r"[\p{Hiragana}\p{Katakana}]", clean):
        kana = len(regex.findall(r"[\p{Hiragana}\p{Katakana}\p{Han}]", clean))
        if kana >= letters(clean) * 0.3:
            return "ja", 1.0, {"ja": 1.0}
    ranked = {lang: float(p) for lang, p in _identifier().rank(clean)}
    lang = max(ranked, key=ranked.__getitem__)
    return lang, ranked[lang], ranked
