"""The spoofing battery: every case must be refused (550 5.7.x) or temp-failed (451 4.4.3).

Each case runs the real authenticate() + judge_sender() against the loopback DNS server.
The registered seller is seller@shop.example; the attacker controls evil.example (with
working SPF and DKIM), the look-alike shop-example.example, and IP 203.0.113.66.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.authn.mailworld import ALIAS, ATTACKER_IP, SELLER, SELLER_IP, World, message, sign

Case = tuple[bytes, dict[str, Any]]
ATT = {"ip": ATTACKER_IP, "mail_from": "x@evil.example", "helo": "evil.example"}
SPF_OK = {"allow_spf_only": True}


def _appended() -> Case:
    signed = sign(message(), "shop.example", length=True)
    return signed + b"\r\nPS: wire the money to IBAN XX00 0000 instead.\r\n", ATT


def _body_mismatch() -> Case:
    signed = sign(message(), "shop.example")
    return signed.replace(b"parcel left today", b"parcel is held, pay"), ATT


def _tampered_subject() -> Case:
    signed = sign(message(), "shop.example")
    return signed.replace(b"Subject: Order", b"Subject: URGENT Order"), ATT


def _replay_elsewhere() -> Case:
    # Genuinely signed by the seller, but written to somebody else; replayed by a stranger.
    return sign(message(to="friend@other.example"), "shop.example"), ATT


def _replay_other_alias() -> Case:
    return sign(message(to="s-0000000000000000000@relay.example"), "shop.example"), ATT


def _replay_to_unsigned() -> Case:
    # A Microsoft-365-style signature (To not signed), re-addressed to the alias by a stranger.
    signed = sign(message(to="friend@other.example"), "shop.example", to_signed=False)
    return signed.replace(b"To: friend@other.example", f"To: {ALIAS}".encode()), ATT


def _nul_domain() -> Case:
    # d= "shop.example<NUL>.evil.example": the attacker's zone serves the key; a C string
    # reader would see "shop.example".
    return sign(message(), "shop.example\x00.evil.example", keyname="evil.example"), ATT


def _second_from_added() -> Case:
    signed = sign(message(), "shop.example")
    return b"From: evil@evil.example\r\n" + signed, ATT


CASES: list[tuple[str, Callable[[], Case], int, str]] = [
    ("forged-from-no-signature", lambda: (message(), {**ATT, "mail_from": SELLER}), 550, "5.7.20"),
    ("forged-from-null-sender", lambda: (message(), {**ATT, "mail_from": ""}), 550, "5.7.20"),
    ("p=none-domain-spf-fail-spf-allowed",
     lambda: (message(), {**ATT, "mail_from": SELLER, **SPF_OK}), 550, "5.7.23"),
    ("signature-by-another-domain",
     lambda: (sign(message(), "evil.example"), ATT), 550, "5.7.22"),
    ("signature-by-lookalike-subdomain",
     lambda: (sign(message(), "shop.example.evil.example"), ATT), 550, "5.7.22"),
    ("replay-signed-message-to-someone-else", _replay_elsewhere, 550, "5.7.21"),
    ("replay-signed-message-to-another-alias", _replay_other_alias, 550, "5.7.21"),
    ("replay-to-unsigned-from-stranger-ip", _replay_to_unsigned, 550, "5.7.21"),
    ("display-name-quoted-address",
     lambda: (sign(message(from_='"seller@shop.example" <x@evil.example>'), "evil.example"),
              ATT), 550, "5.7.1"),
    ("display-name-unquoted-address",
     lambda: (message(from_="seller@shop.example <x@evil.example>"), ATT), 550, "5.7.1"),
    ("display-name-encoded-address",
     lambda: (sign(message(from_="=?utf-8?q?seller=40shop.example?= <x@evil.example>"),
                   "evil.example"), ATT), 550, "5.7.1"),
    ("two-from-headers",
     lambda: (message(extra="From: x@evil.example\r\n"), ATT), 550, "5.7.1"),
    ("obsolete-from-with-space",
     lambda: (message(extra="From : x@evil.example\r\n"), ATT), 550, "5.7.1"),
    ("signed-then-second-from-prepended", _second_from_added, 550, "5.7.1"),
    ("two-mailboxes-in-one-from",
     lambda: (message(from_=f"{SELLER}, x@evil.example"), ATT), 550, "5.7.1"),
    ("group-syntax-from",
     lambda: (message(from_=f"Sellers: {SELLER};"), ATT), 550, "5.7.1"),
    ("encoded-word-local-part",
     lambda: (message(from_="=?utf-8?q?seller?=@shop.example"), ATT), 550, "5.7.1"),
    ("quoted-local-part",
     lambda: (message(from_='"seller"@shop.example'), ATT), 550, "5.7.1"),
    ("comment-trick",
     lambda: (message(from_="seller@shop.example(<x@evil.example>"), ATT), 550, "5.7.1"),
    ("route-address",
     lambda: (message(from_="<@shop.example:x@evil.example>"), ATT), 550, "5.7.1"),
    ("folded-second-from",
     lambda: (message(from_=f"x@evil.example\r\n From: {SELLER}"), ATT), 550, "5.7.1"),
    ("homograph-cyrillic-domain",
     lambda: (message(from_="seller@sh\u043ep.example"), ATT), 550, "5.7.1"),
    ("punycode-lookalike-domain",
     lambda: (message(from_="seller@xn--shp-5cd.example"), ATT), 550, "5.7.1"),
    # The same mailbox in capitals (issue 9), so only the evil.example signature fails it.
    ("case-variant-local-part",
     lambda: (sign(message(from_="SELLER@shop.example"), "evil.example"), ATT), 550, "5.7.22"),
    ("other-local-part-same-domain-signed-by-attacker",
     lambda: (sign(message(from_="sellers@shop.example"), "evil.example"), ATT), 550, "5.7.1"),
    ("mixed-script-local-part",
     lambda: (message(from_="s\u0435ller@shop.example"), ATT), 550, "5.7.1"),
    ("zero-width-in-local-part",
     lambda: (message(from_="sel\u200bler@shop.example"), ATT), 550, "5.7.1"),
    ("undecodable-byte-in-local-part",
     lambda: (message(from_="sel\ufffdler@shop.example"), ATT), 550, "5.7.1"),
    ("idn-homograph-a-label",
     lambda: (sign(message(from_="seller@xn--shp-5cd.example"), "evil.example"), ATT),
     550, "5.7.1"),
    ("nul-in-mail-from-domain",
     lambda: (message(), {**ATT, "mail_from": "seller@shop.example\x00.evil.example",
                          **SPF_OK}), 550, "5.7.26"),
    ("nul-in-dkim-domain", _nul_domain, 550, "5.7.22"),
    ("lookalike-domain-with-own-dkim",
     lambda: (sign(message(from_="seller@shop-example.example"), "shop-example.example"),
              {**ATT, "mail_from": "seller@shop-example.example"}), 550, "5.7.1"),
    ("lookalike-parent-domain",
     lambda: (sign(message(from_="seller@shop.example.evil.example"),
                   "shop.example.evil.example"), ATT), 550, "5.7.1"),
    ("l=-signature-with-appended-body", _appended, 550, "5.7.21"),
    ("dkim-body-hash-mismatch", _body_mismatch, 550, "5.7.20"),
    ("dkim-signed-header-tampered", _tampered_subject, 550, "5.7.20"),
    ("revoked-key-empty-p",
     lambda: (sign(message(), "shop.example", selector="revoked"), ATT), 550, "5.7.20"),
    ("rsa-sha1-signature",
     lambda: (sign(message(), "shop.example", sha1=True), ATT), 550, "5.7.20"),
    ("wrong-selector",
     lambda: (sign(message(), "shop.example", selector="nosuch"), ATT), 550, "5.7.20"),
    ("spf-softfail-tilde-all",
     lambda: (message(from_="seller@soft.example"),
              {**ATT, "mail_from": "seller@soft.example", **SPF_OK,
               "registered": frozenset({"seller@soft.example"})}), 550, "5.7.23"),
    ("spf-fail-dash-all",
     lambda: (message(), {**ATT, "mail_from": SELLER, **SPF_OK}), 550, "5.7.23"),
    ("spf-neutral",
     lambda: (message(from_="seller@neutral.example"),
              {**ATT, "mail_from": "seller@neutral.example", **SPF_OK,
               "registered": frozenset({"seller@neutral.example"})}), 550, "5.7.26"),
    ("unaligned-spf-pass-no-dkim",
     lambda: (message(), {**ATT, **SPF_OK}), 550, "5.7.26"),
    ("aligned-spf-pass-but-dkim-required",
     lambda: (message(), {"mail_from": SELLER, "ip": SELLER_IP}), 550, "5.7.20"),
    ("strict-adkim-parent-domain-signature",
     lambda: (sign(message(from_="seller@mail.strict.example"), "strict.example"),
              {**ATT, "registered": frozenset({"seller@mail.strict.example"})}),
     550, "5.7.22"),
    ("dns-timeout-on-dkim-key",
     lambda: (sign(message(from_="seller@slowdns.example"), "slowdns.example",
                   keyname="shop.example"),
              {**ATT, "registered": frozenset({"seller@slowdns.example"}), "budget": 1.5}),
     451, "4.4.3"),
    ("servfail-on-dkim-key",
     lambda: (sign(message(from_="seller@brokendns.example"), "brokendns.example",
                   keyname="shop.example"),
              {**ATT, "registered": frozenset({"seller@brokendns.example"})}), 451, "4.4.3"),
    ("servfail-on-spf-spf-allowed",
     lambda: (message(from_="seller@servfail-spf.example"),
              {"mail_from": "seller@servfail-spf.example", "ip": SELLER_IP, **SPF_OK,
               "registered": frozenset({"seller@servfail-spf.example"})}), 451, "4.4.3"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("build", "code", "enhanced"),
    [pytest.param(b, c, e, id=i) for i, b, c, e in CASES],
)
async def test_spoof_is_refused(
    world: World, build: Callable[[], Case], code: int, enhanced: str
) -> None:
    raw, kwargs = build()
    results, decision = await world.check(raw, **kwargs)
    assert not decision.ok
    assert (decision.code, decision.enhanced) == (code, enhanced), (decision, results)
    assert "@" not in decision.reason, "reasons must never echo an address"
    assert (code == 451) == results.temperror or code == 550


def test_battery_is_big_enough() -> None:
    assert len(CASES) >= 20


async def test_pnone_is_recorded_but_ignored(world: World) -> None:
    results, decision = await world.check(message(), ip=ATTACKER_IP, helo="evil.example")
    assert results.dmarc_policy == "none" and results.dmarc == "fail"
    assert results.spf == "fail" and not results.aligned_pass
    assert not decision.ok


async def test_l_signature_details(world: World) -> None:
    raw, kwargs = _appended()
    results, _ = await world.check(raw, **kwargs)
    (sig,) = results.dkim
    assert sig.result == "fail" and sig.body_truncated
    # The same l= signature on the untouched body is fine by dkimpy and by us.
    results, decision = await world.check(sign(message(), "shop.example", length=True))
    assert results.dkim[0].result == "pass" and decision.ok


async def test_revoked_and_missing_key_reasons(world: World) -> None:
    results, _ = await world.check(sign(message(), "shop.example", selector="revoked"))
    assert results.dkim[0].reason == "key revoked"
    results, _ = await world.check(sign(message(), "shop.example", selector="nosuch"))
    assert results.dkim[0].result == "permerror"


async def test_replay_reason(world: World) -> None:
    raw, kwargs = _replay_elsewhere()
    results, _ = await world.check(raw, **kwargs)
    assert results.dkim[0].reason == "signed for other recipients"
    # Without the envelope recipients the signature itself is valid.
    results, _ = await world.check(raw, recipients=(), **kwargs)
    assert results.dkim[0].result == "pass"


async def test_report_mode_records_but_accepts(world: World) -> None:
    _, decision = await world.check(message(), mode="report", **ATT)
    assert decision.ok and decision.code == 550 and decision.enhanced == "5.7.20"
    assert decision.reason.startswith("report only:")


async def test_off_mode_skips(world: World) -> None:
    _, decision = await world.check(message(from_="x@evil.example"), mode="off")
    assert decision.ok and decision.code == 250


async def test_as_dict_is_plain_data(world: World) -> None:
    results, _ = await world.check(sign(message(), "shop.example"))
    d = results.as_dict()
    assert d["passed_by"] == "dkim:shop.example" and d["dkim"][0]["result"] == "pass"
    import json

    json.dumps(d)


async def test_rsa_sha1_reason(world: World) -> None:
    results, _ = await world.check(sign(message(), "shop.example", sha1=True))
    assert results.dkim[0].reason == "rsa-sha1 is not accepted"
