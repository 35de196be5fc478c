"""Contact details in every form: hidden HTML, spelled-out at/dot, split across tags or
lines, and bare domains judged by the Public Suffix List (issue 12, step 1)."""

from __future__ import annotations

import pytest

from relay.policy.evaluation import decoded_text
from tests.policy.helpers import ctx, make


def kinds(verdict, action: str = "redact") -> set[str]:
    return {f.kind for f in verdict.findings if f.action == action}


def assert_gone(verdict, *tokens: str) -> None:
    assert verdict.message is not None
    text = decoded_text(verdict.message)
    for t in tokens:
        assert t not in text, t
        assert t.encode() not in verdict.message, t


def test_address_in_hidden_html_is_found_and_cut(engine):
    html = ('<p>Your parcel left today.</p>'
            '<div style="display:none">write me: kate.miller77@gmail.com or 0151 23456789</div>')
    v = engine.evaluate(make("Your parcel left today.", html), ctx(buyer_locale="de-DE"))
    assert {"hidden_content", "email_address", "phone_number"} <= kinds(v)
    assert_gone(v, "kate.miller77@gmail.com", "0151 23456789")


def test_hidden_content_allowed_still_loses_its_address(tmp_path):
    from relay.policy import PolicyEngine
    from relay.policy.config import shipped_dir

    src = (shipped_dir() / "default.toml").read_text()
    src = src.replace('hidden_content = "redact"', 'hidden_content = "allow"')
    src = src.replace('dir = "lexicons"', f'dir = "{shipped_dir() / "lexicons"}"')
    (tmp_path / "p.toml").write_text(src)
    eng = PolicyEngine.load(tmp_path / "p.toml")
    html = '<p>Hello.</p><span style="font-size:0">kate.miller77@gmail.com</span>'
    v = eng.evaluate(make("Hello.", html), ctx())
    assert "email_address" in kinds(v)
    assert_gone(v, "kate.miller77@gmail.com")


@pytest.mark.parametrize("locale, body, token", [
    ("en-GB", "Just mail john at gmail.com and I will answer.", "john at gmail.com"),
    ("en-GB", "Write to john at gmail dot com.", "john at gmail dot com"),
    ("en-US", "my mail is kate at proton.me", "kate at proton.me"),
    ("de-DE", "Schreiben Sie an max punkt muster ät gmx punkt de bitte.", "muster ät gmx punkt de"),
    ("de-DE", "Mail: max (ät) web (punkt) de", "max (ät) web (punkt) de"),
    ("fr-FR", "Écrivez à jean arobase orange point fr merci.", "jean arobase orange point fr"),
    ("es-ES", "Escríbeme a maria arroba gmail punto com.",
     "maria arroba gmail punto com"),
    ("it-IT", "Scrivimi a luca chiocciola libero punto it.",
     "luca chiocciola libero punto it"),
    ("pl-PL", "Napisz na adam małpa wp kropka pl dzięki.", "adam małpa wp kropka pl"),
    ("nl-NL", "Mail naar piet apenstaartje ziggo punt nl.",
     "piet apenstaartje ziggo punt nl"),
    ("ja-JP", "連絡は taro アットマーク gmail ドット com までお願いします。",
     "taro アットマーク gmail ドット com"),
])
def test_spelled_out_addresses_lose_the_whole_address(engine, locale, body, token):
    v = engine.evaluate(make(body + "\n\nRegards"), ctx(buyer_locale=locale))
    assert "email_address" in kinds(v), v.findings
    assert_gone(v, token)


@pytest.mark.parametrize("body", [
    "Please look at amazon.de for the manual.",
    "You can track it at https://www.dhl.de/track?id=123 today.",
    "We met at the station. Lunch at noon.",
    "It is available at amazon.co.uk now.",
])
def test_at_in_prose_is_not_an_address(engine, body):
    v = engine.evaluate(make(body), ctx())
    assert "email_address" not in {f.kind for f in v.findings}, v.findings


@pytest.mark.parametrize("text, html, token", [
    ("", '<table><tr><td>kate.miller77</td><td>@gmail.com</td></tr></table>', "kate.miller77"),
    ("Mail me: kate.miller77@\ngmail.com\nthanks", None, "kate.miller77"),
    ("", '<p>Call me: +49 151<br>2345 6789</p>', "2345 6789"),
    ("Call me on +49 151\n2345 6789 tonight.", None, "2345 6789"),
])
def test_split_across_tags_or_lines(engine, text, html, token):
    v = engine.evaluate(make(text or "see html", html), ctx(buyer_locale="de-DE"))
    assert kinds(v) & {"email_address", "phone_number"}, v.findings
    assert_gone(v, token)


@pytest.mark.parametrize("domain", ["mystore.ai", "best-deals.fun", "ourshop.lol",
                                    "kitchen.shopping", "gadgets.berlin"])
def test_bare_domains_under_any_public_suffix(engine, domain):
    v = engine.evaluate(make(f"Find more on {domain} today."), ctx())
    assert "external_link" in kinds(v), v.findings
    assert_gone(v, domain)


@pytest.mark.parametrize("body", [
    "The file.txt and report.pdf are attached, e.g. the manual.",
    "Firmware version 2.4.13 fixes it; see section 3.2.",
    "Mr.Smith asked about it. It arrived yesterday.Best wishes",
    "Run setup.py or install.sh, then open readme.md and archive.zip.",
    "Art.Nr. 4711, z.B. the blue one, i.e. size M, approx. 3.5 kg.",
    "Dimensions: 12.5 x 30.0 cm, St.Louis office, U.S. shipping.",
])
def test_no_false_domains(engine, body):
    v = engine.evaluate(make(body), ctx())
    assert v.action == "deliver", v.findings
