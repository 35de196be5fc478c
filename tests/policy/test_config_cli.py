"""Policy file validation and the ``relay policy`` commands."""

from __future__ import annotations

import json
import pathlib
import shutil

import pytest
from click.testing import CliRunner

from relay.cli import main
from relay.policy import PolicyEngine, PolicyError
from relay.policy.config import shipped_dir
from tests.policy.helpers import CASES, make


def _copy_policy(tmp_path: pathlib.Path, extra: str) -> pathlib.Path:
    shutil.copytree(shipped_dir() / "lexicons", tmp_path / "lexicons")
    p = tmp_path / "policy.toml"
    p.write_text((shipped_dir() / "default.toml").read_text() + extra)
    return p


def test_shipped_policy_loads_and_describes():
    eng = PolicyEngine.load()
    rules = eng.describe()
    assert {"name", "description", "action"} <= set(rules[0])
    assert {r["kind"] for r in rules} >= {"promotional", "phone_number"}


@pytest.mark.parametrize("extra, key", [
    ("\n[bogus]\nx = 1\n", "bogus"),
    ("\n[review]\nwindow_days = 3\n", "review"),
])
def test_bad_key_is_named(tmp_path, extra, key):
    with pytest.raises(PolicyError, match=key):
        PolicyEngine.load(_copy_policy(tmp_path, extra))


def test_bad_action_value_is_named(tmp_path):
    p = _copy_policy(tmp_path, "")
    p.write_text(p.read_text().replace('promotional = "reject"', 'promotional = "maybe"'))
    with pytest.raises(PolicyError, match=r"actions\.promotional"):
        PolicyEngine.load(p)
    assert issubclass(PolicyError, ValueError)


def test_operator_can_change_an_action(tmp_path):
    p = _copy_policy(tmp_path, "")
    p.write_text(p.read_text().replace('emoji = "redact"', 'emoji = "allow"'))
    eng = PolicyEngine.load(p)
    from tests.policy.helpers import ctx

    assert eng.evaluate(make("Your part ships today 🙂 regards"), ctx()).action == "deliver"


def _ctx_file(tmp_path, **kw) -> str:
    data = {"direction": "seller-to-buyer", "order_id": "204-3817265-4409183",
            "buyer_locale": "en-GB", "thread": "reply", "prior_review_requests": 0,
            "days_since_delivery": None, **kw}
    p = tmp_path / "ctx.json"
    p.write_text(json.dumps(data))
    return str(p)


def test_check_json_and_out(tmp_path):
    msg = tmp_path / "m.eml"
    msg.write_bytes(make("Call my cell 020 7946 0321 if needed. Regards"))
    out = tmp_path / "out.eml"
    r = CliRunner().invoke(main, ["policy", "check", str(msg), "--context",
                                  _ctx_file(tmp_path), "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    obj = json.loads(r.output)
    assert obj["action"] == "redact"
    assert obj["findings"][0] == {"kind": "phone_number", "rule": "contact.phone",
                                  "action": "redact", "where": "body.text",
                                  "excerpt": "020 7946 0321"}
    assert b"7946" not in out.read_bytes()


def test_check_reject_writes_nothing(tmp_path):
    msg = tmp_path / "m.eml"
    msg.write_bytes(make("Use coupon SAVE20 for 20% off our new collection!"))
    out = tmp_path / "out.eml"
    r = CliRunner().invoke(main, ["policy", "check", str(msg), "--context",
                                  _ctx_file(tmp_path), "--out", str(out), "--json"])
    assert r.exit_code == 0
    assert json.loads(r.output)["action"] == "reject"
    assert not out.exists()


def test_check_cannot_judge_exits_nonzero(tmp_path):
    msg = tmp_path / "m.eml"
    msg.write_bytes(make("hello"))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    r = CliRunner().invoke(main, ["policy", "check", str(msg), "--context", str(bad), "--json"])
    assert r.exit_code != 0
    r = CliRunner().invoke(main, ["policy", "check", str(tmp_path / "missing.eml"),
                                  "--context", _ctx_file(tmp_path), "--json"])
    assert r.exit_code != 0


def test_show_lists_rules():
    r = CliRunner().invoke(main, ["policy", "show"])
    assert r.exit_code == 0
    assert "promotional" in r.output and "contact.phone" in r.output


@pytest.mark.skipif(not (CASES / "labels.json").exists(), reason="policy cases absent")
def test_eval_small_directory(tmp_path):
    cases = json.loads((CASES / "labels.json").read_text())[:3]
    for c in cases:
        shutil.copy(CASES / c["file"], tmp_path / c["file"])
    (tmp_path / "labels.json").write_text(json.dumps(cases))
    r = CliRunner().invoke(main, ["policy", "eval", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert r.output.strip().splitlines()[-1] == "policy: 3/3 cases pass (100.0%)"


def test_check_json_has_exactly_the_spec_keys(tmp_path):
    msg = tmp_path / "m.eml"
    msg.write_bytes(make("Use coupon SAVE20 for 20% off our new collection!"))
    r = CliRunner().invoke(main, ["policy", "check", str(msg), "--context",
                                  _ctx_file(tmp_path), "--json"])
    assert set(json.loads(r.output)) == {"action", "findings"}
    r = CliRunner().invoke(main, ["policy", "check", str(msg), "--context", _ctx_file(tmp_path)])
    assert r.output.startswith("reject: Message refused by rule promotional")


def test_lexicon_fast_path_keeps_escapes():
    from relay.policy.config import _lower_pattern

    assert _lower_pattern(r"\bPay\W{0,3}\D\\X") == r"\bpay\W{0,3}\D\\x"
    eng = PolicyEngine.load()
    text = "Please pay within 48 hours at:\nhttps://www.example.com/fee"
    assert eng.policy.lexicon.search("off_platform", text) is not None
