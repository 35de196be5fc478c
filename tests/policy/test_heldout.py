"""The held-out policy cases (tests/policy/heldout, written by a helper who wrote none of the
rules, before reading the word lists): the score the independent set is held to.

- at least 95% of the cases pass by the spec's rule (``judge_case``);
- recall 100% on ``email_address`` and ``phone_number`` (every case that expects one
  has a redact finding of that kind and no listed string survives);
- a message labelled ``deliver`` gets no finding that acts (only ``allow``) and is
  forwarded byte for byte.

Per-kind precision and recall are printed with ``pytest -s`` for the report.
"""

from __future__ import annotations

import json
import pathlib
from collections import Counter

import pytest

from relay.policy import PolicyContext
from relay.policy.doctext import tesseract
from relay.policy.evaluation import judge_case

HERE = pathlib.Path(__file__).resolve().parent / "heldout"
CASES = json.loads((HERE / "labels.json").read_text(encoding="utf-8"))
CONTACT = ("email_address", "phone_number")
# Contact details must all be found: no known misses remain.
KNOWN_CONTACT_MISSES: set[str] = set()


@pytest.fixture(scope="module")
def results(engine):
    if tesseract() is None:
        pytest.skip("tesseract not installed (apt-get install tesseract-ocr)")
    out = {}
    for case in CASES:
        raw = (HERE / case["file"]).read_bytes()
        verdict = engine.evaluate(raw, PolicyContext(**case["context"]))
        out[case["id"]] = (case, raw, verdict, judge_case(case, verdict))
    return out


def _table(results) -> list[str]:
    wanted, found, tp = Counter(), Counter(), Counter()
    for _, _, _, res in results.values():
        for k in res.wanted:
            wanted[k] += 1
            tp[k] += k in res.found
        for k in res.found:
            found[k] += 1
    lines = []
    for k in sorted(set(wanted) | set(found)):
        prec_tp = sum(1 for _, _, _, r in results.values() if k in r.found and k in r.wanted)
        lines.append(f"{k:<22} recall {tp[k]:>3}/{wanted[k]:<3} "
                     f"precision {prec_tp:>3}/{found[k]:<3}")
    return lines


def test_at_least_95_percent_of_cases_pass(results):
    failed = {cid: r.problems for cid, (_, _, _, r) in results.items() if not r.passed}
    score = 1 - len(failed) / len(results)
    print(f"\nheld-out: {len(results) - len(failed)}/{len(results)} ({100 * score:.1f}%)")
    print("\n".join(_table(results)))
    assert len(results) >= 80
    assert score >= 0.95, failed


def _contact_misses(results) -> dict[str, list[str]]:
    misses = {}
    for cid, (case, _, verdict, res) in results.items():
        want = [k for k in case["expected"]["redact"] if k in CONTACT]
        if not want:
            continue
        redacted = {f.kind for f in verdict.findings if f.action == "redact"}
        problems = [f"no {k}" for k in want if k not in redacted]
        problems += [p for p in res.problems if p.startswith("survived")]
        if problems:
            misses[cid] = problems
    return misses


def test_contact_misses_are_only_the_known_ones(results):
    misses = _contact_misses(results)
    assert set(misses) <= KNOWN_CONTACT_MISSES, misses


def test_contact_recall_is_complete(results):
    assert _contact_misses(results) == {}


def test_deliver_cases_are_untouched(results):
    touched = {}
    for cid, (case, raw, verdict, _) in results.items():
        if case["expected"]["action"] != "deliver":
            continue
        acting = [(f.kind, f.excerpt) for f in verdict.findings if f.action != "allow"]
        if acting or verdict.action != "deliver" or verdict.message != raw:
            touched[cid] = (verdict.action, acting)
    assert touched == {}


def test_set_covers_every_class_in_every_language():
    kinds = {k for c in CASES for k in c["expected"]["redact"] + c["expected"]["reject"]}
    assert {"thank_you_only", "review_solicitation", "review_incentive", "promotional",
            "off_platform", "email_address", "phone_number", "hidden_content",
            "external_link", "messaging_app_link"} <= kinds
    langs = Counter(c["context"]["buyer_locale"][:2] for c in CASES)
    assert set(langs) >= {"en", "de", "fr", "es", "it", "ja", "pl", "nl"}
    actions = Counter(c["expected"]["action"] for c in CASES)
    assert actions["deliver"] >= 30 and actions["hold"] >= 2
