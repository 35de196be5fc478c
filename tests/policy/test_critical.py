"""The ``critical`` finding (issue 13): labelled cases of our own in eight languages
(``cases_critical/labels.json``, the spec's format plus ``expected.critical``).

A critical message (cancellation, delivery or address problem, a return or refund that
needs the buyer, a safety notice) is delivered with a ``critical`` finding of action
``allow`` and may carry ``[Important]``; a message with nothing critical never gets the
finding, and ``[Important]`` on it is refused as ``important_tag_misuse``.
"""

from __future__ import annotations

import json
import pathlib

import pytest

from relay.policy import PolicyContext
from relay.policy.evaluation import judge_case
from tests.policy.helpers import ctx, make

HERE = pathlib.Path(__file__).resolve().parent / "cases_critical"
CASES = json.loads((HERE / "labels.json").read_text())


def _critical(verdict) -> list:  # type: ignore[no-untyped-def]
    return [f for f in verdict.findings if f.kind == "critical"]


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_critical_case(engine, case) -> None:  # type: ignore[no-untyped-def]
    verdict = engine.evaluate((HERE / case["file"]).read_bytes(), PolicyContext(**case["context"]))
    result = judge_case(case, verdict)
    assert result.passed, result.problems
    found = _critical(verdict)
    assert bool(found) == case["expected"]["critical"], [f.excerpt for f in verdict.findings]
    assert all(f.action == "allow" for f in found)


def test_score_over_all_cases(engine) -> None:  # type: ignore[no-untyped-def]
    """The score the report quotes: cases whose action and critical flag are both right."""
    right = 0
    for case in CASES:
        raw = (HERE / case["file"]).read_bytes()
        verdict = engine.evaluate(raw, PolicyContext(**case["context"]))
        right += judge_case(case, verdict).passed and (
            bool(_critical(verdict)) == case["expected"]["critical"]
        )
    langs = {c["context"]["buyer_locale"][:2] for c in CASES}
    print(f"\ncritical cases: {right}/{len(CASES)} right, languages {sorted(langs)}")
    assert langs >= {"en", "de", "fr", "es", "it", "ja", "pl", "nl"}
    assert right == len(CASES)


def test_quoted_buyer_words_do_not_make_a_reply_critical(engine) -> None:  # type: ignore[no-untyped-def]
    raw = make(
        "Hi Alex,\n\nNo, it is on its way and arrives on Thursday.\n\n"
        "On Mon, 2 Jun 2025, Alex <b-abcdefgh@relay.example> wrote:\n"
        "> Has my order been cancelled? The parcel seems lost.\n",
        subject="Re: where is my order",
    )
    assert _critical(engine.evaluate(raw, ctx())) == []


def test_buyer_messages_get_no_critical_finding(engine) -> None:  # type: ignore[no-untyped-def]
    raw = make("Hello, my parcel was damaged in transit and the lamp is broken.\n")
    assert _critical(engine.evaluate(raw, ctx("buyer-to-seller"))) == []
