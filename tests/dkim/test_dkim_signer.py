"""Outbound signatures verify with dkimpy against the key published in loopback DNS."""

from __future__ import annotations

import re
from pathlib import Path

import dkim
import dns.resolver
import pytest

from relay.authn import authenticate
from relay.dkim import DkimKeyError, DkimSigner, generate_key, load_signer, public_txt_from_pem
from relay.settings import DkimSection, RelaySection, Settings
from tests.support.dnsserver import DNSServer

MSG = (
    b"From: Buyer via Marketplace <s-1a2b3c@relay.example>\r\n"
    b"To: seller@shop.example\r\nSubject: Question about order 123-4567890-1234567\r\n"
    b"Date: Fri, 27 Nov 2026 09:00:00 +0000\r\nMessage-ID: <abc@relay.example>\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"In-Reply-To: <x@shop.example>\r\nReferences: <x@shop.example>\r\n\r\nIs it blue?\r\n"
)


def dnsfunc_for(server: DNSServer):
    """A dkimpy dnsfunc doing real queries to the loopback server (sync dnspython)."""
    res = dns.resolver.Resolver(configure=False)
    res.nameservers, res.port = [server.host], server.port

    def get_txt(name: bytes, timeout: float = 5) -> bytes | None:
        try:
            ans = res.resolve(name.decode().rstrip("."), "TXT", lifetime=timeout)
        except dns.resolver.NXDOMAIN:
            return None
        return b"".join(next(iter(ans)).strings)

    return get_txt


@pytest.fixture(scope="module")
def keys() -> dict[str, tuple[bytes, str]]:
    return {alg: generate_key(alg) for alg in ("rsa-sha256", "ed25519-sha256")}


@pytest.mark.parametrize("alg", ["rsa-sha256", "ed25519-sha256"])
async def test_signature_verifies_against_published_key(
    dns_server: DNSServer, keys: dict[str, tuple[bytes, str]], alg: str
) -> None:
    pem, txt = keys[alg]
    dns_server.add("s1._domainkey.relay.example", "TXT", txt)
    signed = DkimSigner("relay.example", "s1", pem, alg).sign(MSG)
    assert signed.endswith(MSG)
    assert dkim.verify(signed, dnsfunc=dnsfunc_for(dns_server))
    # And through our own async verifier.
    results = await authenticate(
        signed, mail_from="bounce+x@relay.example", helo="relay.example",
        client_ip="192.0.2.1", resolver=dns_server.resolver(),
    )  # fmt: skip
    assert results.passed_by == "dkim:relay.example"


def test_tags_oversigning_and_no_l(keys: dict[str, tuple[bytes, str]]) -> None:
    pem, _ = keys["rsa-sha256"]
    signed = DkimSigner("Relay.Example", "s1", pem).sign(MSG)
    header = signed.split(b"\r\n\r\n", 1)[0].decode()
    sig = re.sub(r"\s+", "", header.split("DKIM-Signature:", 1)[1].split("\r\nFrom:", 1)[0])
    tags = dict(t.split("=", 1) for t in sig.split(";") if t)
    assert tags["c"] == "relaxed/relaxed" and tags["d"] == "relay.example" and "l" not in tags
    h = tags["h"].split(":")
    for name in ("from", "to", "subject", "date", "message-id"):
        assert h.count(name) == 2, name  # present once + oversigned once
    for name in ("mime-version", "content-type", "in-reply-to", "references"):
        assert h.count(name) == 1, name
    assert "reply-to" not in h  # absent and not oversigned


@pytest.mark.parametrize(
    "tamper",
    [
        lambda m: b"From: evil@evil.example\r\n" + m,  # an added From
        lambda m: m.replace(b"\r\n\r\n", b"\r\nSubject: pay now\r\n\r\n", 1),
        lambda m: m.replace(b"\r\n\r\n", b"\r\nTo: victim@x.example\r\n\r\n", 1),
        lambda m: m + b"appended\r\n",  # no l=: appending breaks it
    ],
)
def test_tampering_breaks_signature(
    dns_server: DNSServer, keys: dict[str, tuple[bytes, str]], tamper
) -> None:
    pem, txt = keys["rsa-sha256"]
    dns_server.add("s1._domainkey.relay.example", "TXT", txt)
    signed = DkimSigner("relay.example", "s1", pem).sign(MSG)
    assert not dkim.verify(tamper(signed), dnsfunc=dnsfunc_for(dns_server))


def test_lf_only_message(keys: dict[str, tuple[bytes, str]]) -> None:
    pem, txt = keys["rsa-sha256"]
    lf = MSG.replace(b"\r\n", b"\n")
    signed = DkimSigner("relay.example", "s1", pem).sign(lf)
    assert b"\r\n" not in signed
    assert dkim.verify(signed, dnsfunc=lambda name, timeout=5: txt.encode())


def test_key_errors(keys: dict[str, tuple[bytes, str]]) -> None:
    rsa_pem, _ = keys["rsa-sha256"]
    ed_pem, _ = keys["ed25519-sha256"]
    with pytest.raises(DkimKeyError):
        DkimSigner("relay.example", "s1", ed_pem, "rsa-sha256")
    with pytest.raises(DkimKeyError):
        DkimSigner("relay.example", "s1", rsa_pem, "ed25519-sha256")
    with pytest.raises(DkimKeyError):
        DkimSigner("relay.example", "s1", b"not a key")
    with pytest.raises(DkimKeyError):
        generate_key("dsa")


def test_generated_key_shapes(keys: dict[str, tuple[bytes, str]]) -> None:
    rsa_pem, rsa_txt = keys["rsa-sha256"]
    assert rsa_pem.startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    assert rsa_txt.startswith("v=DKIM1; k=rsa; p=MIIBIjAN")  # 2048-bit SPKI
    ed_pem, ed_txt = keys["ed25519-sha256"]
    assert ed_pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert ed_txt.startswith("v=DKIM1; k=ed25519; p=") and len(ed_txt.split("p=")[1]) == 44
    assert public_txt_from_pem(rsa_pem) == rsa_txt


def test_load_signer(tmp_path: Path, keys: dict[str, tuple[bytes, str]]) -> None:
    pem, txt = keys["ed25519-sha256"]
    path = tmp_path / "dkim.pem"
    path.write_bytes(pem)
    settings = Settings(
        relay=RelaySection(domain="relay.example"),
        dkim=DkimSection(selector="s2", key_file=path, algorithm="ed25519-sha256"),
    )
    signer = load_signer(settings)
    assert signer is not None and signer.selector == "s2" and signer.domain == "relay.example"
    assert signer.public_txt == txt
    assert load_signer(Settings()) is None
    missing = Settings(dkim=DkimSection(key_file=tmp_path / "nope.pem"))
    with pytest.raises(DkimKeyError, match=r"dkim\.key_file"):
        load_signer(missing)
