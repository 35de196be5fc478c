"""``relay dns records``: every DNS record the relay domain needs, ready to paste.

The relay sends with a VERP return path on its own domain and signs with ``d=`` = its own
domain, so SPF, DKIM and DMARC all align with us; these records make that true at the
receiver. MTA-STS and TLS-RPT protect the inbound leg.
"""

from __future__ import annotations

import hashlib
import ipaddress

import click

from relay.cli import CliState
from relay.cli.dkim import txt_record
from relay.dkim import DkimKeyError, public_txt_from_pem
from relay.settings import Settings


def mta_sts_policy(settings: Settings) -> str:
    """The policy file for https://mta-sts.<domain>/.well-known/mta-sts.txt (RFC 8461)."""
    mode = "enforce" if settings.smtp.tls_cert else "testing"
    return f"version: STSv1\nmode: {mode}\nmx: {settings.relay.helo_name}\nmax_age: 604800\n"


def records(settings: Settings, ip: str | None = None, report_to: str | None = None) -> str:
    """All records as zone-file text with ``;`` comments."""
    domain = settings.relay.domain
    mx = settings.relay.helo_name
    lines = [f"; DNS records for {domain}", "", "; inbound mail", f"{domain}. IN MX 10 {mx}."]
    addr = ipaddress.ip_address(ip) if ip else None
    if addr is not None:
        lines.append(f"{mx}. IN {'A' if addr.version == 4 else 'AAAA'} {addr}")
    else:
        lines.append(f"; {mx}. IN A <address of the relay> (pass --ip to fill in)")

    lines += ["", "; SPF for the return path (MAIL FROM) and the HELO name"]
    senders = f"ip{addr.version}:{addr} " if addr is not None else ""
    if settings.delivery.smarthost:
        lines.append(f"; deliveries leave via {settings.delivery.smarthost}: add its addresses")
    lines.append(f'{domain}. IN TXT "v=spf1 mx {senders}-all"')
    if mx != domain:
        lines.append(f'{mx}. IN TXT "v=spf1 a -all"')

    lines += ["", "; DKIM"]
    key_file = settings.dkim.key_file
    name = f"{settings.dkim.selector}._domainkey.{domain}"
    if key_file is None:
        lines.append("; no dkim.key_file configured: run `relay dkim keygen` first")
    else:
        try:
            lines.append(txt_record(name, public_txt_from_pem(key_file.read_bytes())))
        except (OSError, DkimKeyError) as err:
            raise click.ClickException(f"setting 'dkim.key_file': {err}") from None

    rua = f"; rua=mailto:{report_to}" if report_to else ""
    lines += ["", "; DMARC: everything we send is DKIM-signed and SPF-aligned to us"]
    lines.append(f'_dmarc.{domain}. IN TXT "v=DMARC1; p=reject; adkim=s; aspf=s{rua}"')

    policy = mta_sts_policy(settings)
    sts_id = hashlib.sha256(policy.encode()).hexdigest()[:20]
    lines += ["", "; MTA-STS (RFC 8461)", f'_mta-sts.{domain}. IN TXT "v=STSv1; id={sts_id}"']
    lines.append(f"; serve this at https://mta-sts.{domain}/.well-known/mta-sts.txt :")
    lines += [f";   {p}" for p in policy.splitlines()]
    if not settings.smtp.tls_cert:
        lines.append("; mode is 'testing' because smtp.tls_cert is not set")

    lines += ["", "; TLS-RPT (RFC 8460)"]
    if report_to:
        lines.append(f'_smtp._tls.{domain}. IN TXT "v=TLSRPTv1; rua=mailto:{report_to}"')
    else:
        lines.append(
            f'; _smtp._tls.{domain}. IN TXT "v=TLSRPTv1; rua=mailto:<reports>" '
            "(pass --report-to; the relay itself accepts mail only for aliases)"
        )
    return "\n".join(lines) + "\n"


@click.group()
def dns() -> None:
    """DNS records for the relay domain."""


@dns.command("records")
@click.option("--ip", default=None, help="public address of the relay (A/AAAA and SPF)")
@click.option(
    "--report-to",
    default=None,
    help="mailbox (not on the relay domain) for DMARC aggregate and TLS-RPT reports",
)
@click.pass_obj
def records_cmd(state: CliState, ip: str | None, report_to: str | None) -> None:
    """Print MX, SPF, DKIM, DMARC, MTA-STS and TLS-RPT records for relay.domain."""
    if ip is not None:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise click.BadParameter(f"not an IP address: {ip!r}", param_hint="--ip") from None
    click.echo(records(state.settings, ip, report_to), nl=False)


async def check_published(settings: Settings, ip: str | None) -> list[tuple[str, bool, str]]:
    """Query the published records and compare them with what ``records`` prints.

    Returns ``(record, ok, detail)`` rows. Uses the ``[dns]`` resolver settings.
    """
    from dns.rdtypes.ANY.MX import MX

    from relay.authn.dmarc import parse_record
    from relay.authn.dnsutil import Deadline, DnsTempError, lookup, of_type, txt_strings
    from relay.authn.spf import check_host
    from relay.delivery.route import make_resolver

    resolver = make_resolver(settings.dns)
    deadline = Deadline.after(settings.dns.timeout.total_seconds() * 4)
    domain, mx = settings.relay.domain, settings.relay.helo_name
    rows: list[tuple[str, bool, str]] = []

    async def txt(name: str, prefix: str) -> list[str]:
        records, _ = await lookup(resolver, name, "TXT", deadline)
        return [t for t in txt_strings(records) if t.lower().startswith(prefix.lower())]

    try:
        mxs, _ = await lookup(resolver, domain, "MX", deadline)
        names = {r.exchange.to_text().rstrip(".").lower() for r in of_type(mxs, MX)}
        rows.append(("MX", mx in names, ", ".join(sorted(names)) or "no MX record"))

        if ip:
            result = await check_host(
                ip, domain, f"postmaster@{domain}", helo=mx, resolver=resolver, deadline=deadline
            )
            rows.append(("SPF", result == "pass", f"SPF for {ip}: {result}"))
        else:
            spf = await txt(domain, "v=spf1")
            rows.append(("SPF", len(spf) == 1, spf[0] if len(spf) == 1 else f"{len(spf)} records"))

        name = f"{settings.dkim.selector}._domainkey.{domain}"
        published = await txt(name, "v=DKIM1")
        if settings.dkim.key_file is None:
            rows.append(("DKIM", False, "no dkim.key_file configured"))
        else:
            want = public_txt_from_pem(settings.dkim.key_file.read_bytes())
            key = want.rpartition("p=")[2]
            same = any(t.replace(" ", "").endswith("p=" + key) for t in published)
            rows.append(("DKIM", same, "matches the key file" if same else f"{name}: no match"))

        dmarc = await txt(f"_dmarc.{domain}", "v=DMARC1")
        rec = parse_record(dmarc[0], subdomain=False) if len(dmarc) == 1 else None
        good = rec is not None and rec.policy in ("reject", "quarantine")
        rows.append(("DMARC", good, f"p={rec.policy}" if rec else "missing or invalid"))

        sts = await txt(f"_mta-sts.{domain}", "v=STSv1")
        rows.append(("MTA-STS", len(sts) == 1, sts[0] if sts else "missing"))
        rpt = await txt(f"_smtp._tls.{domain}", "v=TLSRPTv1")
        rows.append(("TLS-RPT", len(rpt) == 1, rpt[0] if rpt else "missing"))
    except DnsTempError as err:
        rows.append(("DNS", False, f"lookup failed: {err}"))
    except (OSError, DkimKeyError) as err:
        rows.append(("DKIM", False, f"setting 'dkim.key_file': {err}"))
    return rows


@dns.command("check")
@click.option("--ip", default=None, help="the relay's sending address, to evaluate SPF")
@click.pass_obj
def check_cmd(state: CliState, ip: str | None) -> None:
    """Check the published records against the configuration; exit 1 on any problem."""
    from relay.cli import run_async

    rows = run_async(check_published(state.settings, ip))
    for name, ok, detail in rows:
        click.echo(f"{'ok  ' if ok else 'FAIL'} {name:8} {detail}")
    if not all(ok for _, ok, _ in rows):
        raise SystemExit(1)
