"""Legitimate mail from the registered seller always passes."""

from __future__ import annotations

from tests.authn.mailworld import ALIAS, SELLER, SELLER_IP, World, message, sign


async def test_dkim_signed_by_sellers_server_passes_from_any_ip(world: World) -> None:
    # Sent through a provider whose IP is not in the seller's SPF: DKIM alone suffices.
    raw = sign(message(), "shop.example")
    results, decision = await world.check(raw, ip="198.18.0.5", helo="out.provider.example")
    assert decision.ok, decision
    assert results.passed_by == "dkim:shop.example" and results.spf == "fail"
    assert results.dmarc == "pass" and results.aligned_pass


async def test_ed25519_signature_passes(world: World) -> None:
    raw = sign(message(), "shop.example", selector="ed", keyname="shop.example-ed",
               algorithm="ed25519")  # fmt: skip
    results, decision = await world.check(raw)
    assert decision.ok and results.passed_by == "dkim:shop.example"


async def test_relaxed_alignment_subdomain_signature(world: World) -> None:
    raw = sign(message(), "mail.shop.example")
    results, decision = await world.check(raw, ip="198.18.0.5")
    assert decision.ok and results.passed_by == "dkim:mail.shop.example"


async def test_strict_domain_exact_signature_passes(world: World) -> None:
    sender = "seller@strict.example"
    raw = sign(message(from_=sender), "strict.example")
    _, decision = await world.check(raw, mail_from=sender, registered=frozenset({sender}))
    assert decision.ok


async def test_spf_only_party_passes_via_include(world: World) -> None:
    sender = "seller@spfonly.example"
    results, decision = await world.check(
        message(from_=sender), mail_from=sender, ip="198.51.100.77", helo="out.spfonly.example",
        registered=frozenset({sender}), allow_spf_only=True,
    )  # fmt: skip
    assert decision.ok and results.passed_by == "spf:spfonly.example"
    assert results.dkim == () and results.dmarc == "pass" and results.dmarc_policy == "reject"


async def test_spf_only_party_passes_via_mx_and_ipv6(world: World) -> None:
    sender = "seller@spfonly.example"
    for ip in ("198.51.100.20", "2001:db8::25"):
        _, decision = await world.check(
            message(from_=sender), mail_from=sender, ip=ip, helo="mail.spfonly.example",
            registered=frozenset({sender}), allow_spf_only=True,
        )  # fmt: skip
        assert decision.ok, ip


async def test_dkim_pass_with_cc_and_display_name(world: World) -> None:
    raw = sign(
        message(from_=f'"Shop, Support" <{SELLER}>', to=f"Buyer <{ALIAS}>",
                extra="Cc: other@shop.example\r\n"),
        "shop.example",
    )  # fmt: skip
    # The test signer does not sign Cc, but the alias is named in the signed To: only what
    # the signature covers counts (issue 9), and it covers the addressee, from any IP.
    _, decision = await world.check(raw)
    assert decision.ok
    _, decision = await world.check(raw, ip="198.18.0.5")
    assert decision.ok
    raw = sign(message(from_=f"=?utf-8?q?Sh=C3=B6p?= <{SELLER}>", to=f"Buyer <{ALIAS}>"),
               "shop.example")  # fmt: skip
    _, decision = await world.check(raw)
    assert decision.ok


async def test_domain_case_insensitive_match(world: World) -> None:
    raw = sign(message(from_="seller@SHOP.Example"), "shop.example")
    _, decision = await world.check(raw, registered=frozenset({"seller@shop.EXAMPLE"}))
    assert decision.ok


async def test_local_part_is_case_insensitive(world: World) -> None:
    """Issue 9: local parts compare as the big providers compare them; another mailbox of
    the same domain is still not the party."""
    raw = sign(message(from_="Seller@shop.example"), "shop.example")
    _, decision = await world.check(raw)
    assert decision.ok
    raw = sign(message(from_="sellers@shop.example"), "shop.example")
    _, decision = await world.check(raw)
    assert not decision.ok and decision.enhanced == "5.7.1"


async def test_one_good_signature_among_bad_ones(world: World) -> None:
    raw = sign(sign(message(), "evil.example"), "shop.example")
    results, decision = await world.check(raw, ip=SELLER_IP)
    assert decision.ok and {d.result for d in results.dkim} == {"pass"}
    assert len(results.dkim) == 2


async def test_microsoft_style_unsigned_to_from_sellers_infrastructure(world: World) -> None:
    raw = sign(message(), "shop.example", to_signed=False)
    results, decision = await world.check(raw)  # seller's IP: SPF passes aligned
    assert decision.ok and results.passed_by == "dkim:shop.example"
