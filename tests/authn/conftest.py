"""Fixtures: the loopback DNS server populated with the test mail world.

The seller's domain, softer SPF-only sellers, a strict-alignment domain, an attacker with
working SPF and DKIM, look-alike domains, and names whose DNS times out or fails.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.authn.mailworld import ATTACKER_IP, SELLER_IP, World, key
from tests.support.dnsserver import DNSServer
from tests.support.fixtures import dns_server  # noqa: F401


@pytest.fixture
def world(dns_server: DNSServer) -> Iterator[World]:  # noqa: F811
    d = dns_server
    # The seller: DKIM key, strict SPF, and p=none to prove it does not relax anything.
    d.add("shop.example", "TXT", f"v=spf1 ip4:{SELLER_IP} -all")
    d.add("shop.example", "MX", "10 mx.shop.example.")
    d.add("mx.shop.example", "A", SELLER_IP)
    d.add("mx.shop.example", "TXT", f"v=spf1 ip4:{SELLER_IP} -all")
    d.add("_dmarc.shop.example", "TXT", "v=DMARC1; p=none; rua=mailto:d@shop.example")
    d.add("sel._domainkey.shop.example", "TXT", key("shop.example")[1])
    d.add("ed._domainkey.shop.example", "TXT", key("shop.example-ed", "ed25519")[1])
    d.add("sel._domainkey.mail.shop.example", "TXT", key("mail.shop.example")[1])
    d.add("revoked._domainkey.shop.example", "TXT", "v=DKIM1; k=rsa; p=")
    # Softer sellers (SPF-only parties).
    d.add("soft.example", "TXT", f"v=spf1 ip4:{SELLER_IP} ~all")
    d.add("neutral.example", "TXT", f"v=spf1 ip4:{SELLER_IP} ?all")
    d.add("spfonly.example", "TXT", "v=spf1 include:_spf.provider.example mx -all")
    d.add("spfonly.example", "MX", "10 mail.spfonly.example.")
    d.add("mail.spfonly.example", "A", "198.51.100.20")
    d.add("_spf.provider.example", "TXT", "v=spf1 ip4:198.51.100.0/24 ip6:2001:db8::/32 -all")
    d.add("_dmarc.spfonly.example", "TXT", "v=DMARC1; p=reject")
    # Strict alignment domain: only d=<exact From domain> aligns.
    d.add("_dmarc.strict.example", "TXT", "v=DMARC1; p=reject; adkim=s; aspf=s")
    d.add("sel._domainkey.strict.example", "TXT", key("strict.example")[1])
    # The attacker owns evil.example and a look-alike, with working SPF and DKIM.
    for dom in ("evil.example", "shop-example.example", "shop.example.evil.example"):
        d.add(dom, "TXT", f"v=spf1 ip4:{ATTACKER_IP} -all")
        d.add(f"sel._domainkey.{dom}", "TXT", key(dom)[1])
    d.add("sel._domainkey.shop.example\x00.evil.example", "TXT", key("evil.example")[1])
    # Broken DNS for the temporary-error cases.
    d.add("slowdns.example", "TXT", f"v=spf1 ip4:{SELLER_IP} -all")
    d.drop("sel._domainkey.slowdns.example")
    d.fail("sel._domainkey.brokendns.example")
    d.add("brokendns.example", "TXT", f"v=spf1 ip4:{SELLER_IP} -all")
    d.fail("servfail-spf.example")
    yield World(d)
