"""The chain of rules is the one place a kind is defined; the document's offset map is
exact (normalised spans cut the original text the sender wrote)."""

from __future__ import annotations

import pathlib
import tomllib

import pytest

from relay.policy import PolicyEngine, PolicyError
from relay.policy.config import shipped_dir
from relay.policy.detect.normalize import DigitWords, normalize
from relay.policy.rules import KINDS, RULES
from tests.policy.helpers import ctx


def test_every_rule_has_identity_and_the_shipped_policy_names_every_kind():
    shipped = tomllib.loads((shipped_dir() / "default.toml").read_text())["actions"]
    assert set(shipped) == set(KINDS)
    assert len(KINDS) == len(RULES)
    for rule in RULES:
        assert rule.name and rule.description and rule.scope in (
            "both directions", "seller-to-buyer", "buyer-to-seller")


def test_describe_lists_the_chain_with_the_policy_actions(engine):
    rows = engine.describe()
    assert [r["kind"] for r in rows] == [r.kind for r in RULES]
    assert {r["kind"]: r["action"] for r in rows}["critical"] == "allow"


def test_an_action_for_a_kind_no_rule_has_is_refused(tmp_path: pathlib.Path):
    text = (shipped_dir() / "default.toml").read_text().replace(
        "[actions]\n", '[actions]\nnot_a_rule = "reject"\n', 1)
    bad = tmp_path / "p.toml"
    bad.write_text(text.replace('dir = "lexicons"', f'dir = "{shipped_dir() / "lexicons"}"'))
    with pytest.raises(PolicyError, match=r"actions\.not_a_rule: unknown key"):
        PolicyEngine.load(bad)


@pytest.mark.parametrize("original, needle", [
    ("write to kate\u200b.support\u00ad@gmail.com now", "kate\u200b.support\u00ad@gmail.com"),
    ("ﬁle at kamome＠gmail．com today", "kamome＠gmail．com"),
    ("call null-eins-fünf-neun 328 44 17", "null-eins-fünf-neun 328 44 17"),
])
def test_normalised_spans_map_back_to_the_original(engine, original, needle):
    dw = DigitWords(engine.policy.lexicon.digits)
    nt = dw(normalize(original))
    assert "\u200b" not in nt.text and "\u00ad" not in nt.text
    hits = engine.reader.scanner.scan(original, ctx())
    cut = [original[h.start:h.end] for h in hits if h.cut]
    assert needle in cut, (cut, nt.text)
