"""Notices to senders in the reader's language (the order's buyer locale), for the six
template languages; the reason comes from the status code alone, never the remote text."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime, timedelta

import pytest

from relay.bounce import Original, compose_notice, explain, notice_entry
from relay.mail import notices_i18n

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
WANT = {  # a word each language's notice must contain, and its subject's
    "en": ("could not be delivered", "Undelivered message"),
    "de": ("konnte nicht zugestellt werden", "nicht zugestellt"),
    "fr": ("n'a pas pu être distribué", "non distribué"),
    "es": ("no se pudo entregar", "no entregado"),
    "it": ("non è stato recapitato", "non recapitato"),
    "ja": ("配信できませんでした", "配信されませんでした"),
}


def _original(locale: str) -> Original:
    return Original("113-4829301-5520417", "s-abc@relay.example", "Wo ist mein Paket?",
                    NOW - timedelta(hours=1), "alice@example.com",
                    message_id="<m1@example.com>", locale=locale)  # fmt: skip


@pytest.mark.parametrize("locale", ["en-US", "de-DE", "fr-FR", "es-ES", "it-IT", "ja-JP"])
def test_notice_in_the_readers_language(locale: str) -> None:
    lang = locale[:2]
    reason = explain(550, "5.1.1")
    raw = compose_notice(_original(locale), reason=reason, domain="relay.example",
                         marketplace="Marketplace", now=NOW)  # fmt: skip
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    body = " ".join(msg.get_body(("plain",)).get_content().split())  # unwrapped
    text, subject = WANT[lang]
    assert text in body and subject in str(msg["Subject"])
    assert notices_i18n.TEXTS[lang].reasons["1"] in body
    assert "113-4829301-5520417" in body and "s-abc@relay.example" in body
    assert msg["In-Reply-To"] == "<m1@example.com>"
    entry = notice_entry(_original(locale), reason=reason, domain="relay.example",
                         marketplace="Marketplace", now=NOW)  # fmt: skip
    assert entry is not None and subject in entry.record.subject
    assert entry.record.reason == reason  # the archive keeps the English reason for ops


def test_every_language_has_every_reason_and_unit() -> None:
    assert set(notices_i18n.TEXTS) == set(notices_i18n.LANGUAGES)
    keys = set(notices_i18n.TEXTS["en"].reasons)
    for lang, t in notices_i18n.TEXTS.items():
        assert set(t.reasons) == keys, lang
        assert set(t.units) == {"day", "hour", "minute"}, lang


@pytest.mark.parametrize("enhanced", ["5.1.1", "5.2.2", "4.4.1", "5.7.1", "", "9.9.9"])
def test_every_english_reason_is_translated(enhanced: str) -> None:
    reason = explain(550 if enhanced.startswith("5") else 451, enhanced)
    for lang in notices_i18n.LANGUAGES:
        out = notices_i18n.localized_reason(reason, lang)
        assert out and (lang == "en" or out != reason), (lang, reason)


def test_expiry_reason_counts_in_the_readers_words() -> None:
    reason = explain(None, expired=True, after=timedelta(days=5))
    assert notices_i18n.localized_reason(reason, "de-DE").endswith("5 Tage lang nicht erreichbar")
    one = explain(None, expired=True, after=timedelta(days=1))
    assert "1 jour" in notices_i18n.localized_reason(one, "fr")
    assert notices_i18n.localized_reason(reason, "pt-BR") == reason  # outside the six: English
