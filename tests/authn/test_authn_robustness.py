"""authenticate() on hostile or broken input: never raises, never passes, stays in budget."""

from __future__ import annotations

import time

import pytest

from relay.authn import authenticate, judge_sender
from tests.authn.mailworld import ATTACKER_IP, SELLER, World, message, sign


@pytest.mark.parametrize(
    "sig_header",
    [
        b"DKIM-Signature: v=1; a=rsa-sha256; d=shop.example; s=se\x00l; h=from; bh=AA==; b=AA==",
        b"DKIM-Signature: garbage",
        b"DKIM-Signature: v=1; a=rsa-sha256; d=shop.example; s=sel; h=from; bh=!!; b=!!",
        b"DKIM-Signature: v=1; a=rsa-md5; d=shop.example; s=sel; h=from; bh=AA==; b=AA==",
        b"DKIM-Signature: v=1; a=rsa-sha256; d=; s=sel; h=from; bh=AA==; b=AA==",
    ],
)
async def test_malformed_signatures_never_pass(world: World, sig_header: bytes) -> None:
    raw = sig_header + b"\r\n" + message()
    results, decision = await world.check(raw, ip=ATTACKER_IP)
    assert results.dkim and all(d.result in ("fail", "permerror") for d in results.dkim)
    assert not decision.ok and decision.code == 550


async def test_garbage_message_and_bad_ip(world: World) -> None:
    results = await authenticate(
        b"\x00\xff not a message", mail_from="<>", helo="[192.0.2.1]", client_ip="nonsense",
        resolver=world.dns.resolver(), timeout=2,
    )  # fmt: skip
    assert results.dkim == () and results.from_domain == "" and results.dmarc == "permerror"
    assert results.spf == "none" and results.helo_spf == "none"
    decision = judge_sender(
        results, from_header_values=[], registered={SELLER}, allow_spf_only=True,
        mode="enforce",
    )  # fmt: skip
    assert not decision.ok and decision.enhanced == "5.7.1"


async def test_everything_times_out_within_budget(world: World) -> None:
    d = world.dns
    for name in ("slow.example", "_dmarc.slow.example", "sel._domainkey.slow.example",
                 "mx.slow.example"):  # fmt: skip
        d.drop(name)
    raw = sign(message(from_="seller@slow.example"), "slow.example", keyname="shop.example")
    start = time.monotonic()
    results, decision = await world.check(
        raw, mail_from="seller@slow.example", helo="mx.slow.example", allow_spf_only=True,
        registered=frozenset({"seller@slow.example"}), budget=1.0,
    )  # fmt: skip
    assert time.monotonic() - start < 2.5
    assert results.temperror and results.spf == "temperror"
    assert results.dkim[0].result == "temperror" and results.dmarc == "temperror"
    assert (decision.code, decision.enhanced) == (451, "4.4.3")


async def test_dns_trouble_does_not_block_an_aligned_dkim_pass(world: World) -> None:
    # SPF of the MAIL FROM domain fails temporarily, DKIM passes: accepted.
    world.dns.fail("bounces.shop.example")
    raw = sign(message(), "shop.example")
    results, decision = await world.check(raw, mail_from="b@bounces.shop.example")
    assert results.spf == "temperror" and results.temperror
    assert decision.ok


async def test_null_sender_uses_helo_identity(world: World) -> None:
    results, _ = await world.check(message(), mail_from="", helo="mx.shop.example")
    assert results.spf_domain == "mx.shop.example" and results.spf == "pass"
    assert results.passed_by == "spf:mx.shop.example"
