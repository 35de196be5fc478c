"""DMARC discovery/alignment and the strict From reader."""

from __future__ import annotations

import pytest

from relay.authn.dmarc import aligned, fetch, org_domain, parse_record
from relay.authn.dnsutil import Deadline, DnsTempError
from relay.authn.fromaddr import FromError, header_values, parse_mailbox, same_address
from tests.support.dnsserver import DNSServer


def test_org_domain_uses_bundled_psl() -> None:
    assert org_domain("a.b.shop.example.co.uk") == "example.co.uk"
    assert org_domain("mail.shop.example") == "shop.example"
    assert org_domain("Shop.Example.") == "shop.example"


def test_alignment() -> None:
    assert aligned("mail.shop.example", "shop.example")
    assert not aligned("mail.shop.example", "shop.example", strict=True)
    assert not aligned("shop.example.evil.example", "shop.example")
    assert not aligned("", "shop.example")


def test_parse_record() -> None:
    rec = parse_record("v=DMARC1; p=reject; sp=none; adkim=s", subdomain=True)
    assert rec is not None and rec.policy == "none" and rec.strict_dkim and not rec.strict_spf
    assert parse_record("v=DMARC1; p=bogus", subdomain=False) is None
    assert parse_record("v=spf1 -all", subdomain=False) is None


async def test_fetch_falls_back_to_org_domain(dns_server: DNSServer) -> None:
    dns_server.add("_dmarc.shop.example", "TXT", "v=DMARC1; p=reject; sp=quarantine")
    res = dns_server.resolver()
    rec = await fetch("mail.shop.example", res, Deadline.after(2))
    assert rec is not None and rec.policy == "quarantine"
    rec = await fetch("shop.example", res, Deadline.after(2))
    assert rec is not None and rec.policy == "reject"
    assert await fetch("nodmarc.example", res, Deadline.after(2)) is None
    dns_server.fail("_dmarc.broken.example")
    with pytest.raises(DnsTempError):
        await fetch("broken.example", res, Deadline.after(2))


async def test_several_dmarc_records_mean_no_policy(dns_server: DNSServer) -> None:
    """RFC 7489 §6.6.3 step 5: several records end discovery; no org-domain fallback."""
    d = dns_server
    d.add("_dmarc.shop.example", "TXT", "v=DMARC1; p=reject")
    d.add("_dmarc.two.shop.example", "TXT", "v=DMARC1; p=none")
    d.add("_dmarc.two.shop.example", "TXT", "v=DMARC1; p=quarantine")
    d.add("_dmarc.shop2.example", "TXT", "v=DMARC1; p=reject")
    d.add("_dmarc.shop2.example", "TXT", "v=DMARC1;p=reject")
    res = d.resolver()
    assert await fetch("two.shop.example", res, Deadline.after(2)) is None
    assert await fetch("shop2.example", res, Deadline.after(2)) is None
    assert await fetch("mail.shop2.example", res, Deadline.after(2)) is None


async def test_records_not_starting_with_v_dmarc1_are_ignored(dns_server: DNSServer) -> None:
    """§6.6.3 steps 2 and 4: only records whose first tag is v=DMARC1 count."""
    d = dns_server
    d.add("_dmarc.shop.example", "TXT", "v=DMARC1; p=reject")
    for junk in ("google-site-verification=abc", "v=spf1 -all", "p=none; v=DMARC1",
                 "v=DMARC10; p=none", "v=dmarc1; p=none"):  # fmt: skip
        d.add("_dmarc.mixed.example", "TXT", junk)
        d.add("_dmarc.sub.shop.example", "TXT", junk)
    d.add("_dmarc.mixed.example", "TXT", "v = DMARC1 ; p = quarantine")
    res = d.resolver()
    rec = await fetch("mixed.example", res, Deadline.after(2))
    assert rec is not None and rec.policy == "quarantine"
    rec = await fetch("sub.shop.example", res, Deadline.after(2))  # none left: org domain
    assert rec is not None and rec.policy == "reject"


async def test_one_record_with_bad_policy_stops_discovery(dns_server: DNSServer) -> None:
    """§6.6.3 step 6: a bad p= is p=none when rua= is valid, else no DMARC; never the
    organisational domain's record instead."""
    d = dns_server
    d.add("_dmarc.shop.example", "TXT", "v=DMARC1; p=reject")
    d.add("_dmarc.bad.shop.example", "TXT", "v=DMARC1; p=bogus")
    d.add("_dmarc.rua.shop.example", "TXT", "v=DMARC1; p=bogus; rua=mailto:d@shop.example")
    d.add("_dmarc.badsp.shop.example", "TXT", "v=DMARC1; p=reject; sp=bogus")
    res = d.resolver()
    assert await fetch("bad.shop.example", res, Deadline.after(2)) is None
    rec = await fetch("rua.shop.example", res, Deadline.after(2))
    assert rec is not None and rec.policy == "none"
    assert await fetch("badsp.shop.example", res, Deadline.after(2)) is None


def test_header_values_reads_raw_folded_and_obsolete() -> None:
    raw = (
        b"Subject: x\r\nFROM: =?utf-8?q?a?=\r\n <a@b.example>\r\nFrom : c@d.example\r\n"
        b"\r\nFrom: body@x.example\r\n"
    )
    assert header_values(raw) == ["=?utf-8?q?a?= <a@b.example>", "c@d.example"]


@pytest.mark.parametrize(
    "value",
    [
        "a@b.example, c@d.example",
        "a@b.example <c@d.example>",
        "<a@b.example> <c@d.example>",
        '"a"@b.example',
        "=?utf-8?b?YQ==?=@b.example",
        "a@b.example (c@d.example)",
        "a@[192.0.2.1]",
        "a@localhost",
        "a@b.example\x00",
        "a@b\u0435xample.example",
        "undisclosed-recipients:;",
        "",
    ],
)
def test_parse_mailbox_refuses(value: str) -> None:
    with pytest.raises(FromError) as err:
        parse_mailbox(value)
    assert "@" not in str(err.value)


def test_same_address() -> None:
    assert same_address("a@B.example", "a@b.EXAMPLE.")
    assert same_address("A@b.example", "a@b.example")  # as providers compare (issue 9)
    assert not same_address("a@b.example", "ab@b.example")
    assert not same_address("a@b.example", "a@b.example.evil")
