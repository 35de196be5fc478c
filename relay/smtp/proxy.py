"""Trusted front ends: PROXY protocol (HAProxy's v1/v2 header) and Postfix's XFORWARD.

Behind a TCP load balancer every connection comes from the balancer's address; the
PROXY header carries the real client's. That address is what SPF checks and what the
archive records, so trusting a forged header would let anyone pass someone else's SPF:
the header is honoured only from ``smtp.proxy_networks``, and a connection from anywhere
else is closed before a byte of it is read. Postfix in front (``smtpd_proxy_filter``)
passes the same facts with the XFORWARD command, trusted from the same networks.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from aiosmtpd.proxy_protocol import V2_CMD, ProxyData

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(values: list[str]) -> list[Network]:
    return [ipaddress.ip_network(v, strict=False) for v in values]


def _ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(value.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped  # a dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d
    return ip


def allowed(peer: Any, networks: list[Network]) -> bool:
    """Is the TCP peer (``(host, port, ...)`` from the socket) one of our balancers?"""
    host = peer[0] if isinstance(peer, tuple) and peer else str(peer)
    ip = _ip(str(host))
    return ip is not None and any(ip in net for net in networks)


def client_peer(data: ProxyData) -> tuple[str, int] | None:
    """The real client's (ip, port) from a valid header; None for LOCAL/UNSPEC (the
    balancer's own health checks), which keep the balancer's address."""
    if data.version == 2 and data.command == V2_CMD.LOCAL:
        return None
    if isinstance(data.src_addr, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return str(data.src_addr), int(data.src_port or 0)
    return None


_UNKNOWN = ("[UNAVAILABLE]", "[TEMPUNAVAIL]")


def parse_xforward(arg: str) -> dict[str, str]:
    """``NAME=x ADDR=1.2.3.4 HELO=y`` -> lower-cased keys; unknown values dropped, ADDR
    checked as an IP address (``IPV6:`` prefix removed). Raises ValueError on bad syntax."""
    out: dict[str, str] = {}
    for item in arg.split():
        key, sep, val = item.partition("=")
        if not sep or not key.isalpha():
            raise ValueError(item)
        key = key.lower()
        if val in _UNKNOWN or not val:
            continue
        if key == "addr":
            ip = _ip(val[5:] if val.upper().startswith("IPV6:") else val)
            if ip is None:
                raise ValueError(item)
            val = str(ip)
        elif key == "port" and not val.isdigit():
            raise ValueError(item)
        out[key] = val[:255]
    return out
