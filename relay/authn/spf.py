"""SPF (RFC 7208) evaluated with asynchronous dnspython lookups.

Why our own evaluator: pyspf resolves synchronously and would block the SMTP event loop;
the RFC's algorithm is small. Supported: ip4, ip6, a, mx, ptr, include, exists, all,
redirect=, macros (RFC 7208 §7; ``exp=`` is parsed and ignored because we never send its
text), the 10-lookup limit (§4.6.4), the two-void-lookup limit and the 10-name limit for
mx/ptr. Results: pass, fail, softfail, neutral, none, temperror, permerror.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from dataclasses import dataclass, field

import dns.asyncresolver
import dns.reversename

from relay.authn.dnsutil import Deadline, DnsTempError, lookup, txt_strings

MAX_LOOKUPS = 10
MAX_VOID = 2
MAX_NAMES = 10
_QUALIFIERS = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}
_MECHS = {"all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists"}
_DOMAIN = re.compile(
    r"^(?=.{1,253}$)([A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.)+"
    r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?$"
)
_MACRO = re.compile(r"%(?:\{([slodiphcrtvSLODIPHCRTV])(\d*)(r?)([.\-+,/_=]*)\}|(.))")
_CIDR = re.compile(r"^(.*?)(?:/(\d+))?(?://(\d+))?$")


class PermError(Exception):
    """The record is broken or over a limit: the SPF result is permerror."""


@dataclass
class _Ctx:
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    sender: str
    helo: str
    resolver: dns.asyncresolver.Resolver
    deadline: Deadline
    lookups: int = 0
    voids: int = 0
    seen: list[str] = field(default_factory=list)

    def count(self) -> None:
        self.lookups += 1
        if self.lookups > MAX_LOOKUPS:
            raise PermError("too many DNS lookups")

    async def query(self, name: str, rtype: str) -> list:
        records, void = await lookup(self.resolver, name, rtype, self.deadline)
        if void:
            self.voids += 1
            if self.voids > MAX_VOID:
                raise PermError("too many void lookups")
        return records


def is_domain(name: str) -> bool:
    """True for a plausible FQDN (at least two labels, RFC 1035 lengths)."""
    return bool(_DOMAIN.match(name)) and "." in name.rstrip(".")


def _parse_ip(ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    addr = ipaddress.ip_address(ip.strip().strip("[]"))
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def expand(spec: str, ctx: _Ctx, domain: str) -> str:
    """Expand RFC 7208 §7 macros in a domain-spec."""
    local, _, sdomain = ctx.sender.rpartition("@")
    if isinstance(ctx.ip, ipaddress.IPv4Address):
        i_val, v_val = str(ctx.ip), "in-addr"
    else:
        i_val, v_val = ".".join(ctx.ip.exploded.replace(":", "")), "ip6"
    values = {
        "s": ctx.sender,
        "l": local or "postmaster",
        "o": sdomain,
        "d": domain,
        "i": i_val,
        "p": "unknown",
        "v": v_val,
        "h": ctx.helo,
    }

    def repl(m: re.Match[str]) -> str:
        if m.group(5) is not None:
            lit = {"%": "%", "_": " ", "-": "%20"}.get(m.group(5))
            if lit is None:
                raise PermError("bad macro")
            return lit
        letter, digits, rev, delims = m.group(1), m.group(2), m.group(3), m.group(4)
        if letter.lower() not in values:
            raise PermError("macro not allowed here")
        parts = re.split("[" + re.escape(delims or ".") + "]", values[letter.lower()])
        if rev:
            parts.reverse()
        if digits:
            if int(digits) == 0:
                raise PermError("bad macro")
            parts = parts[-int(digits) :]
        out = ".".join(parts)
        return urllib.parse.quote(out, safe="") if letter.isupper() else out

    if "%" not in spec:
        return spec
    try:
        out = _MACRO.sub(repl, spec)
    except re.error:
        raise PermError("bad macro") from None
    if "%" in _MACRO.sub("", spec):
        raise PermError("bad macro")
    while len(out) > 253 and "." in out:  # §7.3: drop left labels
        out = out.split(".", 1)[1]
    return out


def _split_cidr(arg: str, default: str) -> tuple[str, int | None, int | None]:
    m = _CIDR.match(arg)
    assert m is not None
    name = m.group(1) or default
    v4 = int(m.group(2)) if m.group(2) else None
    v6 = int(m.group(3)) if m.group(3) else None
    if (v4 is not None and v4 > 32) or (v6 is not None and v6 > 128):
        raise PermError("bad cidr length")
    return name, v4, v6


def _in_net(ctx: _Ctx, addr: str, v4: int | None, v6: int | None) -> bool:
    try:
        target = ipaddress.ip_address(addr)
    except ValueError:
        return False
    if target.version != ctx.ip.version:
        return False
    plen = (
        (v4 if v4 is not None else 32) if target.version == 4 else (v6 if v6 is not None else 128)
    )
    return ctx.ip in ipaddress.ip_network(f"{target}/{plen}", strict=False)


async def _addresses(ctx: _Ctx, name: str) -> list[str]:
    rtype = "A" if ctx.ip.version == 4 else "AAAA"
    return [r.address for r in await ctx.query(name, rtype)]


async def _mechanism(ctx: _Ctx, mech: str, arg: str | None, domain: str) -> bool:
    """Does the mechanism match? Raises PermError / DnsTempError."""
    if mech == "all":
        return True
    if mech in ("ip4", "ip6"):
        if not arg:
            raise PermError("ip mechanism without network")
        try:
            net = ipaddress.ip_network(arg, strict=False)
        except ValueError:
            raise PermError("bad network") from None
        if (mech == "ip4") != (net.version == 4):
            raise PermError("bad network")
        return net.version == ctx.ip.version and ctx.ip in net
    if mech in ("a", "mx"):
        ctx.count()
        name, v4, v6 = _split_cidr(arg or "", domain)
        name = expand(name, ctx, domain)
        if mech == "a":
            return any(_in_net(ctx, a, v4, v6) for a in await _addresses(ctx, name))
        mxs = await ctx.query(name, "MX")
        if len(mxs) > MAX_NAMES:
            raise PermError("too many MX names")
        for mx in mxs:
            target = mx.exchange.to_text().rstrip(".")
            if target and any(_in_net(ctx, a, v4, v6) for a in await _addresses(ctx, target)):
                return True
        return False
    if mech == "ptr":
        ctx.count()
        target = expand(arg or domain, ctx, domain).lower().rstrip(".")
        names = await ctx.query(dns.reversename.from_address(str(ctx.ip)).to_text(), "PTR")
        for ptr in names[:MAX_NAMES]:
            host = ptr.target.to_text().lower().rstrip(".")
            if (host == target or host.endswith("." + target)) and str(ctx.ip) in (
                await _addresses(ctx, host)
            ):
                return True
        return False
    if mech == "exists":
        ctx.count()
        if not arg:
            raise PermError("exists without domain")
        return bool(await ctx.query(expand(arg, ctx, domain), "A"))
    if mech == "include":
        ctx.count()
        if not arg:
            raise PermError("include without domain")
        result = await _check_host(ctx, expand(arg, ctx, domain))
        if result == "pass":
            return True
        if result in ("fail", "softfail", "neutral"):
            return False
        if result == "temperror":
            raise DnsTempError("include")
        raise PermError("include of a domain without a usable record")
    raise PermError(f"unknown mechanism {mech}")


async def _check_host(ctx: _Ctx, domain: str) -> str:
    """RFC 7208 §4 check_host(); returns a result string, never raises."""
    domain = domain.rstrip(".")
    if not is_domain(domain):
        return "none"
    try:
        records, _ = await lookup(ctx.resolver, domain, "TXT", ctx.deadline)
    except DnsTempError:
        return "temperror"
    spf = [
        t for t in txt_strings(records) if t.lower() == "v=spf1" or t.lower().startswith("v=spf1 ")
    ]
    if not spf:
        return "none"
    if len(spf) > 1:
        return "permerror"
    try:
        return await _evaluate(ctx, spf[0], domain)
    except PermError:
        return "permerror"
    except DnsTempError:
        return "temperror"


async def _evaluate(ctx: _Ctx, record: str, domain: str) -> str:
    terms = record.split()[1:]
    redirect: str | None = None
    modifiers: set[str] = set()
    directives: list[tuple[str, str, str | None]] = []
    for term in terms:
        m = re.match(r"^([A-Za-z][A-Za-z0-9_.-]*)=(.*)$", term)
        if m:
            name = m.group(1).lower()
            if name in ("redirect", "exp"):
                if name in modifiers:
                    raise PermError("duplicate modifier")
                modifiers.add(name)
                if name == "redirect":
                    redirect = m.group(2)
            continue
        qual = "pass"
        if term[0] in _QUALIFIERS:
            qual, term = _QUALIFIERS[term[0]], term[1:]
        mm = re.match(r"^([A-Za-z][A-Za-z0-9_.-]*)(?::(.*)|(/.*))?$", term)
        if mm is None or mm.group(1).lower() not in _MECHS:
            raise PermError("unknown mechanism")
        mech = mm.group(1).lower()
        arg_value = mm.group(2) if mm.group(2) is not None else mm.group(3)
        directives.append((qual, mech, arg_value))
    for qual, mech, arg in directives:
        if await _mechanism(ctx, mech, arg, domain):
            return qual
    if redirect is not None:
        ctx.count()
        result = await _check_host(ctx, expand(redirect, ctx, domain))
        return "permerror" if result == "none" else result
    return "neutral"


async def check_host(
    ip: str,
    domain: str,
    sender: str,
    *,
    helo: str,
    resolver: dns.asyncresolver.Resolver,
    deadline: Deadline,
) -> str:
    """Evaluate SPF for ``domain`` and client ``ip``; ``sender`` is the full identity."""
    try:
        addr = _parse_ip(ip)
    except ValueError:
        return "permerror"
    ctx = _Ctx(ip=addr, sender=sender, helo=helo, resolver=resolver, deadline=deadline)
    return await _check_host(ctx, domain)


async def check_identity(
    ip: str,
    mail_from: str,
    helo: str,
    *,
    resolver: dns.asyncresolver.Resolver,
    deadline: Deadline,
) -> str:
    """SPF for an SMTP session: the MAIL FROM identity, or HELO for the null sender."""
    helo = helo.strip().rstrip(".")
    mail_from = mail_from.strip().strip("<>")
    if "@" in mail_from:
        domain, sender = mail_from.rpartition("@")[2], mail_from
    elif mail_from:
        domain, sender = mail_from, f"postmaster@{mail_from}"
    else:
        domain, sender = helo, f"postmaster@{helo}"
    return await check_host(ip, domain, sender, helo=helo, resolver=resolver, deadline=deadline)
