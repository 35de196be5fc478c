"""SPF evaluation (RFC 7208) against the loopback DNS server."""

from __future__ import annotations

import pytest

from relay.authn.dnsutil import Deadline
from relay.authn.spf import check_host
from tests.support.dnsserver import DNSServer


async def spf(d: DNSServer, ip: str, domain: str = "s.example", sender: str = "") -> str:
    return await check_host(
        ip, domain, sender or f"user@{domain}", helo="h.example",
        resolver=d.resolver(timeout=0.4), deadline=Deadline.after(3),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("record", "ip", "expected"),
    [
        ("v=spf1 ip4:192.0.2.0/24 -all", "192.0.2.9", "pass"),
        ("v=spf1 ip4:192.0.2.0/24 -all", "192.0.3.9", "fail"),
        ("v=spf1 ip4:192.0.2.0/24 ~all", "192.0.3.9", "softfail"),
        ("v=spf1 ip4:192.0.2.0/24 ?all", "192.0.3.9", "neutral"),
        ("v=spf1 ip4:192.0.2.0/24", "192.0.3.9", "neutral"),
        ("v=spf1 -ip4:192.0.2.9 +all", "192.0.2.9", "fail"),
        ("v=spf1 ip6:2001:db8::/32 -all", "2001:db8::1", "pass"),
        ("v=spf1 ip4:192.0.2.9 -all", "::ffff:192.0.2.9", "pass"),
        ("v=spf1 a -all", "192.0.2.1", "pass"),
        ("v=spf1 a/24 -all", "192.0.2.200", "pass"),
        ("v=spf1 a:other.example -all", "198.51.100.1", "pass"),
        ("v=spf1 mx -all", "198.51.100.2", "pass"),
        ("v=spf1 mx:s.example/24 -all", "198.51.100.250", "pass"),
        ("v=spf1 include:inc.example -all", "203.0.113.5", "pass"),
        ("v=spf1 include:inc.example -all", "203.0.114.5", "fail"),
        ("v=spf1 exists:%{i}.allow.example -all", "192.0.2.77", "pass"),
        ("v=spf1 exists:%{ir}.%{v}._spf.example -all", "192.0.2.78", "pass"),
        ("v=spf1 exists:%{l}.users.example -all", "192.0.2.99", "pass"),
        ("v=spf1 redirect=inc.example", "203.0.113.5", "pass"),
        ("v=spf1 redirect=inc.example", "192.0.2.1", "fail"),
        ("v=spf1 redirect=nospf.example", "192.0.2.1", "permerror"),
        ("v=spf1 include:nospf.example -all", "192.0.2.1", "permerror"),
        ("v=spf1 foo:bar -all", "192.0.2.1", "permerror"),
        ("v=spf1 redirect=a.example redirect=b.example", "192.0.2.1", "permerror"),
        ("v=spf1 ip4:300.1.1.1 -all", "192.0.2.1", "permerror"),
        ("v=spf1 exists:%{z}.x.example -all", "192.0.2.1", "permerror"),
        ("v=spf1 include:broken.example -all", "192.0.2.1", "temperror"),
        ("v=spf1 unknown-mod=1 ip4:192.0.2.1 -all", "192.0.2.1", "pass"),
    ],
)
async def test_mechanisms(dns_server: DNSServer, record: str, ip: str, expected: str) -> None:
    d = dns_server
    d.add("s.example", "TXT", record)
    d.add("s.example", "A", "192.0.2.1")
    d.add("s.example", "MX", "10 mx1.s.example.")
    d.add("mx1.s.example", "A", "198.51.100.2")
    d.add("other.example", "A", "198.51.100.1")
    d.add("inc.example", "TXT", "v=spf1 ip4:203.0.113.0/24 -all")
    d.add("nospf.example", "TXT", "some other text")
    d.add("192.0.2.77.allow.example", "A", "127.0.0.2")
    d.add("78.2.0.192.in-addr._spf.example", "A", "127.0.0.2")
    d.add("user.users.example", "A", "127.0.0.2")
    d.fail("broken.example")
    assert await spf(d, ip) == expected


async def test_no_record_and_nxdomain(dns_server: DNSServer) -> None:
    dns_server.add("plain.example", "TXT", "google-site-verification=abc")
    assert await spf(dns_server, "192.0.2.1", "plain.example") == "none"
    assert await spf(dns_server, "192.0.2.1", "missing.example") == "none"
    assert await spf(dns_server, "192.0.2.1", "localhost") == "none"


async def test_two_records_is_permerror(dns_server: DNSServer) -> None:
    dns_server.add("two.example", "TXT", "v=spf1 -all")
    dns_server.add("two.example", "TXT", "v=spf1 +all")
    assert await spf(dns_server, "192.0.2.1", "two.example") == "permerror"


async def test_ten_lookup_limit(dns_server: DNSServer) -> None:
    d = dns_server
    # 11 chained includes: the 11th lookup exceeds the limit even though it would pass.
    for i in range(11):
        d.add(f"l{i}.example", "TXT", f"v=spf1 include:l{i + 1}.example -all")
    d.add("l11.example", "TXT", "v=spf1 +all")
    assert await spf(d, "192.0.2.1", "l0.example") == "permerror"
    d.add("short.example", "TXT", "v=spf1 include:l2.example -all")  # 10 lookups: fine
    assert await spf(d, "192.0.2.1", "short.example") == "pass"


async def test_void_lookup_limit(dns_server: DNSServer) -> None:
    dns_server.add("void.example", "TXT", "v=spf1 a:n1.example a:n2.example a:n3.example -all")
    assert await spf(dns_server, "192.0.2.1", "void.example") == "permerror"
    dns_server.add("void2.example", "TXT", "v=spf1 a:n1.example a:n2.example -all")
    assert await spf(dns_server, "192.0.2.1", "void2.example") == "fail"


async def test_long_record_split_over_strings(dns_server: DNSServer) -> None:
    nets = " ".join(f"ip4:10.{i}.0.0/16" for i in range(40))
    dns_server.add("long.example", "TXT", f"v=spf1 {nets} ip4:192.0.2.5 -all")
    assert await spf(dns_server, "192.0.2.5", "long.example") == "pass"


async def test_timeout_is_temperror(dns_server: DNSServer) -> None:
    dns_server.drop("slow.example")
    assert await spf(dns_server, "192.0.2.1", "slow.example") == "temperror"


async def test_ptr(dns_server: DNSServer) -> None:
    dns_server.add("ptr.example", "TXT", "v=spf1 ptr -all")
    dns_server.add("5.2.0.192.in-addr.arpa", "PTR", "mail.ptr.example.")
    dns_server.add("mail.ptr.example", "A", "192.0.2.5")
    assert await spf(dns_server, "192.0.2.5", "ptr.example") == "pass"
    assert await spf(dns_server, "192.0.2.6", "ptr.example") == "fail"


def _p_world(d: DNSServer) -> None:
    """A client 192.0.2.5 whose PTR names are a forged one, a foreign one and ours."""
    d.add("p.example", "TXT", "v=spf1 exists:%{p}.allow.example -all")
    d.add("5.2.0.192.in-addr.arpa", "PTR", "forged.p.example.")  # no A back to the client
    d.add("5.2.0.192.in-addr.arpa", "PTR", "mx.other.example.")
    d.add("5.2.0.192.in-addr.arpa", "PTR", "out.p.example.")
    d.add("mx.other.example", "A", "192.0.2.5")
    d.add("out.p.example", "A", "192.0.2.5")
    d.add("forged.p.example", "A", "198.51.100.9")
    d.add("out.p.example.allow.example", "A", "127.0.0.2")
    d.add("unknown.allow.example", "A", "127.0.0.2")


async def test_p_macro_is_the_validated_ptr_name(dns_server: DNSServer) -> None:
    """RFC 7208 §7.3: %{p} is a PTR name resolving back to the client, preferring <domain>
    and its subdomains over foreign names and never a forged (unvalidated) one."""
    _p_world(dns_server)
    assert await spf(dns_server, "192.0.2.5", "p.example") == "pass"
    # Only the foreign name validates: it is used, and it is not on the allow list.
    dns_server.remove("out.p.example", "A")
    assert await spf(dns_server, "192.0.2.5", "p.example") == "fail"
    # Nothing validates: "unknown".
    dns_server.remove("mx.other.example", "A")
    assert await spf(dns_server, "192.0.2.5", "p.example") == "pass"


async def test_p_macro_dns_error_is_unknown_and_ptr_error_no_match(dns_server: DNSServer) -> None:
    """A failing PTR query gives %{p} "unknown" (§7.3) and a ptr mechanism no match (§5.5)."""
    d = dns_server
    d.add("p.example", "TXT", "v=spf1 exists:%{p}.allow.example -all")
    d.add("unknown.allow.example", "A", "127.0.0.2")
    d.add("ptr.example", "TXT", "v=spf1 ptr ?all")
    d.fail("5.2.0.192.in-addr.arpa")
    assert await spf(d, "192.0.2.5", "p.example") == "pass"
    assert await spf(d, "192.0.2.5", "ptr.example") == "neutral"
    # A PTR timeout is asked once per check, however many %{p} the record holds.
    d.add("p2.example", "TXT", "v=spf1 exists:%{p}.a.example exists:%{p}.allow.example -all")
    d.drop("6.2.0.192.in-addr.arpa")
    res = d.resolver(timeout=0.3)
    res.lifetime = 0.3  # one packet per lookup, no retry
    result = await check_host("192.0.2.6", "p2.example", "u@p2.example", helo="h.example",
                              resolver=res, deadline=Deadline.after(3))  # fmt: skip
    assert result == "pass"
    assert d.queries.count(("6.2.0.192.in-addr.arpa.", "PTR")) == 1


async def test_p_macro_lookups_are_bounded(dns_server: DNSServer) -> None:
    """15 PTR names: one PTR query and at most 10 address queries, however often %{p}
    appears in the record."""
    d = dns_server
    d.add("many.example", "TXT", "v=spf1 exists:%{p}.a.example exists:%{p}.b.example -all")
    for i in range(15):
        d.add("5.2.0.192.in-addr.arpa", "PTR", f"h{i}.elsewhere.example.")
    assert await spf(d, "192.0.2.5", "many.example") == "fail"
    ptr = [q for q in d.queries if q[1] == "PTR"]
    addresses = [q for q in d.queries if q[1] == "A" and q[0].endswith("elsewhere.example.")]
    assert len(ptr) == 1 and len(addresses) == 10


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ("v=spf1 ip4:192.0.2.1\t-all", "permerror"),  # only SP separates terms (§4.6.1)
        ("v=spf1 ip4:192.0.2.1\r\n-all", "permerror"),
        ("v=spf1 ip4:192.0.2.01 -all", "permerror"),  # no leading zeros in ip4 (§12)
        ("v=spf1 ip4:192.0.2.1/032 -all", "permerror"),
        ("v=spf1 ip6:2001:db8::1/64/64 -all", "permerror"),
        ("v=spf1 a:localhost -all", "permerror"),  # domain-spec needs a top label
        ("v=spf1 ip4:192.0.2.1 -all exp=%{r}.example", "permerror"),  # r is exp-only
        ("v=spf1 ip4:192.0.2.1 -all foo=%x", "permerror"),  # unknown modifier, bad macro
        ("v=spf1 ip4:192.0.2.1 -all foo=bar", "pass"),
        ("v=spf1 a:s.example. -all", "pass"),
        ("V=SPF1 IP4:192.0.2.1 -ALL", "pass"),
        ("v=spf1 ip4:192.0.2.1 -all ", "pass"),
    ],
)
async def test_syntax(dns_server: DNSServer, record: str, expected: str) -> None:
    """The whole record is checked before evaluation (§4.6): an error after the matching
    term still makes it permerror."""
    dns_server.add("s.example", "TXT", record)
    dns_server.add("s.example", "A", "192.0.2.1")
    assert await spf(dns_server, "192.0.2.1") == expected
