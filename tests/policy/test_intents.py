"""Message kinds by meaning: slot combinations across sentences, in several languages
(issue 12, step 3). Wordings here are deliberately not those of the lexicon entries."""

from __future__ import annotations

import pytest

from relay.policy import intents
from tests.policy.helpers import ctx, make


def rejected(v) -> set[str]:
    return {f.kind for f in v.reject_findings}


def test_slots_are_tagged_per_sentence(engine):
    acts = intents.tag(engine.policy.lexicon,
                       "If you love it, the product page is the place. If not, write to us first.")
    assert len(acts.sentences) == 2
    assert {"happy_condition", "review_target"} <= acts.slots[0]
    assert {"unhappy_condition", "contact_first"} <= acts.slots[1]
    assert acts.near("happy_condition", "review_target") == 0


@pytest.mark.parametrize("locale, body, kind", [
    ("en-US", "If everything went well, tell other buyers about it. Otherwise, message us "
     "first and we'll sort it out.", "review_solicitation"),
    ("nl-NL", "Als je tevreden bent, deel dan je ervaring met andere kopers. Zo niet, neem "
     "eerst contact met ons op.", "review_solicitation"),
    ("pl-PL", "Jeśli jest Pan zadowolony, prosimy o kilka słów na stronie produktu.",
     "review_solicitation"),
    ("fr-FR", "Nous vous remboursons le produit. Pourriez-vous ensuite modifier votre note ?",
     "review_incentive"),
    ("en-GB", "You're welcome! Always happy to help.", "thank_you_only"),
    ("es-ES", "¡De nada! Nos alegra que le haya gustado. Estamos a su disposición.",
     "thank_you_only"),
    ("de-DE", "Der Ersatzteil ist unterwegs. Werfen Sie auch einen Blick auf unser neues "
     "Sortiment im Shop.", "promotional"),
])
def test_kinds_by_meaning(engine, locale, body, kind):
    v = engine.evaluate(make(body, subject="Hello"),
                        ctx(buyer_locale=locale, thread="proactive", days_since_delivery=10))
    assert kind in rejected(v), v.findings


@pytest.mark.parametrize("locale, body", [
    ("en-GB", "You're welcome! The spare belt is model B-12 and fits your machine."),
    ("de-DE", "Gern geschehen. Die Schrauben liegen im kleinen Beutel unter dem Deckel."),
    ("en-GB", "If you are happy with the colour, we will ship on Monday; if not, tell us "
     "which one you prefer."),
    ("en-US", "Your refund of 12 USD was sent today; it shows on your statement in 3 days."),
])
def test_legitimate_answers_pass(engine, locale, body):
    v = engine.evaluate(make(body), ctx(buyer_locale=locale, thread="reply"))
    assert v.action == "deliver", v.findings
