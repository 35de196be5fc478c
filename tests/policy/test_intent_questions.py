"""A condition asked as a short question is the "if" clause of the next sentence
(relay.policy.intents.tag): "Not happy? Write to us first." gates like "If you are not
happy, write to us first."; a long question or a plain sentence does not carry over."""

from __future__ import annotations

from relay.policy import intents


def _slots(engine, text):
    acts = intents.tag(engine.policy.lexicon, text)
    return dict(zip(acts.sentences, acts.slots, strict=True))


def test_short_condition_question_carries_to_the_next_sentence(engine):
    s = _slots(engine, "Any problems? Write to us first and we will fix it.")
    assert "unhappy_condition" in s["Write to us first and we will fix it."]
    s = _slots(engine, "¿Algún problema? Escríbenos antes a nosotros.")
    assert "unhappy_condition" in s["Escríbenos antes a nosotros."]


def test_a_long_question_or_a_statement_does_not(engine):
    long_q = ("Did you have any problems with the assembly of the shelf, the brackets or the "
              "screws that came in the bag?")
    s = _slots(engine, long_q + " The manual is on page 4.")
    assert "unhappy_condition" not in s["The manual is on page 4."]
    s = _slots(engine, "If not, that is fine. The manual is on page 4.")
    assert "unhappy_condition" not in s["The manual is on page 4."]
