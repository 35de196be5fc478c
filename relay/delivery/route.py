"""Where a delivery goes: the smarthost, or the recipient domain's MX hosts.

Direct MX follows RFC 5321 5.1: MX records by preference, the domain's own A/AAAA when
there is no MX, and a null MX (RFC 7505, ``0 .``) is a permanent failure.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver

from relay.core.errors import RouteError as RouteError
from relay.settings import DeliverySection, DnsSection, parse_hostport


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    tls: str = "opportunistic"  # none|starttls|implicit|opportunistic
    username: str = ""
    password: str = ""
    hostname: str = ""  # the name we connect for (logs, TLS SNI)

    @property
    def key(self) -> tuple[str, int]:
        return (self.host, self.port)


def make_resolver(dns_settings: DnsSection) -> dns.asyncresolver.Resolver:
    if dns_settings.nameservers:
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = list(dns_settings.nameservers)
        resolver.port = dns_settings.port
    else:
        resolver = dns.asyncresolver.Resolver()
    resolver.lifetime = dns_settings.timeout.total_seconds()
    resolver.timeout = min(resolver.lifetime, 2.0)
    return resolver


class Router:
    def __init__(self, delivery: DeliverySection, resolver: dns.asyncresolver.Resolver) -> None:
        self.delivery = delivery
        self.resolver = resolver

    async def targets(self, rcpt: str) -> list[Target]:
        d = self.delivery
        if d.smarthost:
            host, port = parse_hostport(d.smarthost, 25)
            return [
                Target(
                    host, port, d.smarthost_tls, d.smarthost_username, d.smarthost_password, host
                )
            ]
        domain = rcpt.rpartition("@")[2].lower().rstrip(".")
        hosts = await self._mx_hosts(domain)
        out: list[Target] = []
        unsure = False
        for name in hosts:
            found, failed = await self._addresses(name)
            unsure = unsure or failed
            out.extend(Target(addr, d.mx_port, "opportunistic", hostname=name) for addr in found)
        if not out:
            if hosts == [domain] and not unsure:
                # No MX and, for certain, no address either: nothing will ever accept mail.
                raise RouteError(
                    "recipient domain has no mail server", permanent=True, enhanced="5.1.2"
                )
            raise RouteError(
                "no address for the mail exchangers", permanent=False, enhanced="4.4.4"
            )
        return out

    async def _mx_hosts(self, domain: str) -> list[str]:
        try:
            answer = await self.resolver.resolve(domain, "MX")
        except dns.resolver.NXDOMAIN:
            raise RouteError(
                "recipient domain does not exist", permanent=True, enhanced="5.1.2"
            ) from None
        except dns.resolver.NoAnswer:
            return [domain]  # implicit MX
        except (dns.name.NameTooLong, dns.name.LabelTooLong, dns.name.EmptyLabel):
            raise RouteError(
                "recipient domain is not a valid name", permanent=True, enhanced="5.1.2"
            ) from None
        except dns.exception.DNSException as err:  # timeouts, SERVFAIL, anything odd
            raise RouteError(
                f"DNS failure: {type(err).__name__}", permanent=False, enhanced="4.4.3"
            ) from None
        records = sorted(answer, key=lambda r: (r.preference, random.random()))
        if len(records) == 1 and str(records[0].exchange) == ".":
            raise RouteError(
                "recipient domain accepts no mail (null MX)", permanent=True, enhanced="5.1.10"
            )
        return [str(r.exchange).rstrip(".") for r in records if str(r.exchange) != "."]

    async def _addresses(self, name: str) -> tuple[list[str], bool]:
        """The host's addresses, and whether a lookup failed (so "none" is not certain)."""
        found: list[str] = []
        failed = False
        for rtype in ("A", "AAAA"):
            try:
                answer = await self.resolver.resolve(name, rtype)
            except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
                continue
            except dns.exception.DNSException:
                failed = True
                continue
            found.extend(r.address for r in answer)
        return found, failed
