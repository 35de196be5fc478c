"""``relay dkim keygen`` and ``relay dns records`` print records an operator can paste."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import dkim
import dns.resolver
from click.testing import CliRunner

from relay.cli import main
from relay.dkim import load_signer
from relay.settings import load_settings
from tests.support.dnsserver import DNSServer


def config(tmp_path: Path, algorithm: str = "rsa-sha256", tls: bool = False) -> Path:
    cfg = tmp_path / "relay.toml"
    tls_line = f'[smtp]\ntls_cert = "{tmp_path}/c.pem"\ntls_key = "{tmp_path}/k.pem"\n'
    cfg.write_text(
        '[relay]\ndomain = "relay.example"\nhostname = "mx.relay.example"\n'
        f'[dkim]\nselector = "s1"\nkey_file = "{tmp_path}/keys/s1.pem"\n'
        f'algorithm = "{algorithm}"\n' + (tls_line if tls else "")
    )
    return cfg


def strings_of(record: str) -> str:
    """What a DNS server would serve: the quoted strings joined."""
    return "".join(re.findall(r'"([^"]*)"', record))


def test_keygen_writes_0600_and_prints_pasteable_record(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    result = CliRunner().invoke(main, ["-c", str(cfg), "dkim", "keygen"])
    assert result.exit_code == 0, result.output
    key = tmp_path / "keys" / "s1.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    record = result.stdout
    assert record.startswith("s1._domainkey.relay.example. IN TXT (")
    assert all(len(s) <= 255 for s in re.findall(r'"([^"]*)"', record))
    value = strings_of(record)
    assert value.startswith("v=DKIM1; k=rsa; p=")

    # The printed record, served by DNS, verifies what the configured signer signs.
    signer = load_signer(load_settings(cfg))
    assert signer is not None
    msg = b"From: a@relay.example\r\nTo: b@x.example\r\nSubject: s\r\n\r\nhi\r\n"
    with DNSServer() as server:
        server.add("s1._domainkey.relay.example", "TXT", value)
        res = dns.resolver.Resolver(configure=False)
        res.nameservers, res.port = [server.host], server.port

        def get_txt(name: bytes, timeout: float = 5) -> bytes:
            ans = res.resolve(name.decode().rstrip("."), "TXT", lifetime=timeout)
            return b"".join(next(iter(ans)).strings)

        assert dkim.verify(signer.sign(msg), dnsfunc=get_txt)


def test_keygen_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    runner = CliRunner()
    assert runner.invoke(main, ["-c", str(cfg), "dkim", "keygen"]).exit_code == 0
    key = tmp_path / "keys" / "s1.pem"
    before = key.read_bytes()
    again = runner.invoke(main, ["-c", str(cfg), "dkim", "keygen"])
    assert again.exit_code != 0 and "--force" in again.output
    assert key.read_bytes() == before
    forced = runner.invoke(main, ["-c", str(cfg), "dkim", "keygen", "--force"])
    assert forced.exit_code == 0 and key.read_bytes() != before
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_keygen_ed25519_to_explicit_path(tmp_path: Path) -> None:
    cfg = config(tmp_path, algorithm="ed25519-sha256")
    out = tmp_path / "ed.pem"
    result = CliRunner().invoke(
        main,
        ["-c", str(cfg), "dkim", "keygen", "--selector", "s9", "--algorithm", "ed25519",
         "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert out.exists() and stat.S_IMODE(out.stat().st_mode) == 0o600
    line = result.stdout.strip()
    assert line.startswith('s9._domainkey.relay.example. IN TXT "v=DKIM1; k=ed25519; p=')


def test_dns_records(tmp_path: Path) -> None:
    cfg = config(tmp_path, tls=True)
    runner = CliRunner()
    runner.invoke(main, ["-c", str(cfg), "dkim", "keygen"])
    result = runner.invoke(
        main, ["-c", str(cfg), "dns", "records", "--ip", "192.0.2.25",
               "--report-to", "reports@ops.example"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "relay.example. IN MX 10 mx.relay.example." in out
    assert "mx.relay.example. IN A 192.0.2.25" in out
    assert 'relay.example. IN TXT "v=spf1 mx ip4:192.0.2.25 -all"' in out
    assert "s1._domainkey.relay.example. IN TXT (" in out
    assert '_dmarc.relay.example. IN TXT "v=DMARC1; p=reject; adkim=s; aspf=s;' in out
    assert re.search(r'_mta-sts\.relay\.example\. IN TXT "v=STSv1; id=[0-9a-f]{20}"', out)
    assert ";   mode: enforce" in out and ";   mx: mx.relay.example" in out
    assert '_smtp._tls.relay.example. IN TXT "v=TLSRPTv1; rua=mailto:reports@ops.example"' in out
    # Same configuration, same MTA-STS id (it only changes when the policy does).
    again = runner.invoke(main, ["-c", str(cfg), "dns", "records", "--ip", "192.0.2.25"])
    sts = re.compile(r"id=[0-9a-f]{20}")
    assert sts.findall(again.stdout) == sts.findall(out)


def test_dns_records_without_key_or_ip(tmp_path: Path) -> None:
    cfg = tmp_path / "relay.toml"
    cfg.write_text('[relay]\ndomain = "relay.example"\n')
    result = CliRunner().invoke(main, ["-c", str(cfg), "dns", "records", "--ip", "2001:db8::1"])
    assert result.exit_code == 0, result.output
    assert "relay.example. IN AAAA 2001:db8::1" in result.stdout
    assert "ip6:2001:db8::1" in result.stdout and "run `relay dkim keygen`" in result.stdout
    assert ";   mode: testing" in result.stdout
    bad = CliRunner().invoke(main, ["-c", str(cfg), "dns", "records", "--ip", "nope"])
    assert bad.exit_code != 0


def load_zone(server: DNSServer, text: str) -> int:
    """Feed ``relay dns records`` output to the DNS server, as an operator would paste it."""
    joined = re.sub(r"\(\s*(.*?)\s*\)", lambda m: " ".join(m.group(1).split()), text, flags=re.S)
    count = 0
    for line in joined.splitlines():
        if not line.strip() or line.startswith(";"):
            continue
        name, _in, rtype, value = line.split(None, 3)
        if rtype == "TXT":
            value = strings_of(value)
        server.add(name, rtype, value)
        count += 1
    return count


def test_dns_check_against_pasted_records(tmp_path: Path) -> None:
    runner = CliRunner()
    with DNSServer() as server:
        cfg = config(tmp_path, tls=True)
        cfg.write_text(
            cfg.read_text()
            + f'[dns]\nnameservers = ["{server.host}"]\nport = {server.port}\ntimeout = "1s"\n'
        )
        assert runner.invoke(main, ["-c", str(cfg), "dkim", "keygen"]).exit_code == 0
        before = runner.invoke(main, ["-c", str(cfg), "dns", "check"])
        assert before.exit_code == 1 and "FAIL MX" in before.stdout
        printed = runner.invoke(
            main, ["-c", str(cfg), "dns", "records", "--ip", "127.0.0.1",
                   "--report-to", "reports@ops.example"],
        ).stdout  # fmt: skip
        assert load_zone(server, printed) == 8
        after = runner.invoke(main, ["-c", str(cfg), "dns", "check", "--ip", "127.0.0.1"])
        assert after.exit_code == 0, after.stdout
        assert "ok   DKIM     matches the key file" in after.stdout
        assert "ok   SPF      SPF for 127.0.0.1: pass" in after.stdout
        # A rotated key no longer matches what is published.
        runner.invoke(main, ["-c", str(cfg), "dkim", "keygen", "--force"])
        rotated = runner.invoke(main, ["-c", str(cfg), "dns", "check"])
        assert rotated.exit_code == 1 and "FAIL DKIM" in rotated.stdout
