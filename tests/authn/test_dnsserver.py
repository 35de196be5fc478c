"""The loopback DNS server answers like a real authoritative server."""

from __future__ import annotations

import dns.asyncresolver
import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.resolver
import pytest

from tests.support.dnsserver import DNSServer


async def test_mx_a_and_long_txt(dns_server: DNSServer) -> None:
    dns_server.add("shop.example", "MX", "10 mx.shop.example.")
    dns_server.add("mx.shop.example", "A", "127.0.0.1")
    long = "v=DKIM1; k=rsa; p=" + "A" * 600
    dns_server.add("s1._domainkey.shop.example", "TXT", long)
    res = dns_server.resolver()
    mx = await res.resolve("shop.example", "MX")
    assert [(r.preference, r.exchange.to_text()) for r in mx] == [(10, "mx.shop.example.")]
    a = await res.resolve("mx.shop.example", "A")
    assert [r.address for r in a] == ["127.0.0.1"]
    txt = await res.resolve("s1._domainkey.shop.example", "TXT")
    strings = next(iter(txt)).strings
    assert all(len(s) <= 255 for s in strings) and len(strings) == 3
    assert b"".join(strings).decode() == long


async def test_nxdomain_nodata_servfail_drop(dns_server: DNSServer) -> None:
    dns_server.add("shop.example", "A", "192.0.2.1")
    dns_server.fail("broken.example")
    dns_server.drop("slow.example")
    res = dns_server.resolver(timeout=0.2)
    with pytest.raises(dns.resolver.NXDOMAIN):
        await res.resolve("nowhere.example", "A")
    with pytest.raises(dns.resolver.NoAnswer):
        await res.resolve("shop.example", "MX")
    with pytest.raises(dns.resolver.NoNameservers):
        await res.resolve("broken.example", "TXT")
    with pytest.raises(dns.exception.Timeout):
        await res.resolve("slow.example", "TXT")


def test_tcp_and_sync_use() -> None:
    with DNSServer() as server:
        server.add("big.example", "TXT", "x" * 2000)
        q = dns.message.make_query("big.example", "TXT")
        udp = dns.query.udp(q, server.host, port=server.port, timeout=2)
        assert udp.flags & dns.flags.TC or udp.answer  # too big for 512-byte UDP
        tcp = dns.query.tcp(q, server.host, port=server.port, timeout=2)
        assert tcp.rcode() == dns.rcode.NOERROR
        assert b"".join(next(iter(tcp.answer[0])).strings) == b"x" * 2000
        sync = dns.resolver.Resolver(configure=False)
        sync.nameservers, sync.port = [server.host], server.port
        assert sync.resolve("big.example", "TXT").rrset is not None


async def test_cname_followed(dns_server: DNSServer) -> None:
    dns_server.add("alias.example", "CNAME", "real.example.")
    dns_server.add("real.example", "A", "192.0.2.7")
    ans = await dns_server.resolver().resolve("alias.example", "A")
    assert [r.address for r in ans] == ["192.0.2.7"]
