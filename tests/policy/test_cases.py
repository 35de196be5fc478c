"""The shared labelled development cases, judged by the spec's pass rule."""

from __future__ import annotations

import subprocess
import sys

import pytest

from relay.policy import PolicyContext
from relay.policy.evaluation import LARGE, judge_case
from tests.policy.helpers import CASES, labels

_CASES = labels()
_STORED = [c for c in _CASES if c["file"] not in LARGE]
_BIG = [c for c in _CASES if c["file"] in LARGE]


@pytest.mark.skipif(not _CASES, reason="../shared/policy-cases not present")
@pytest.mark.parametrize("case", _STORED, ids=[c["id"] for c in _STORED])
def test_labelled_case(engine, case):
    raw = (CASES / case["file"]).read_bytes()
    res = judge_case(case, engine.evaluate(raw, PolicyContext(**case["context"])))
    assert res.passed, res.problems


@pytest.fixture(scope="module")
def large_dir(tmp_path_factory):
    script = CASES / "make_large.py"
    if not script.exists():
        pytest.skip("make_large.py not present")
    out = tmp_path_factory.mktemp("large")
    subprocess.run([sys.executable, str(script), "--out-dir", str(out)], check=True,
                   capture_output=True, timeout=300)
    return out


@pytest.mark.skipif(not _BIG, reason="no large cases listed")
@pytest.mark.parametrize("case", _BIG, ids=[c["id"] for c in _BIG])
def test_large_case(engine, large_dir, case):
    path = CASES / case["file"]
    if not path.exists():
        path = large_dir / case["file"]
    res = judge_case(case, engine.evaluate(path.read_bytes(), PolicyContext(**case["context"])))
    assert res.passed, res.problems


@pytest.mark.skipif(not _CASES, reason="../shared/policy-cases not present")
def test_no_deliver_case_gets_a_redaction(engine):
    for case in _STORED:
        if case["expected"]["action"] != "deliver":
            continue
        v = engine.evaluate((CASES / case["file"]).read_bytes(),
                            PolicyContext(**case["context"]))
        assert not [f for f in v.findings if f.action != "allow"], case["id"]
