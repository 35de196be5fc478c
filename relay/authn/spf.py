"""SPF (RFC 7208) evaluated with asynchronous dnspython lookups.

Why our own evaluator rather than pyspf in a worker thread: every lookup of one message
(SPF, DKIM, DMARC) shares one ``Deadline`` and one DNS library (dnspython's async
resolver), a slow sender's DNS never holds a thread, and a cancelled check stops at its
next await. pyspf resolves synchronously, keeps its DNS hook as a module global, cannot be
cancelled, and would bring a second resolver configuration. What pyspf has and we lacked
was strict syntax; that is a grammar, so it lives here: the official RFC 7208 test suite
(tests/authn/test_rfc7208_suite.py) passes in full.

How a record is handled:

1. Selection (§4.5): TXT records only (type SPF is obsolete, §3.1); the one starting
   ``v=spf1`` followed by a space or its end. Several: permerror.
2. Syntax (§4.6, §12): the whole record is parsed before anything is evaluated; any error
   anywhere (non-printable or non-ASCII bytes, separators other than SP, unknown
   mechanisms, bad ip4/ip6 literals, CIDR lengths on mechanisms without one, domain-specs
   without a valid top label, bad macros, malformed or repeated ``redirect``/``exp``,
   unknown modifiers with bad macro syntax) is permerror.
3. Evaluation (§4.6.4, §5): at most 10 DNS mechanisms/``redirect`` per check (includes
   count), at most 2 void lookups, at most 10 MX names per ``mx`` (more is permerror) and
   10 PTR names per ``ptr`` (the rest ignored). ``%{p}`` is the validated PTR name of the
   client (§7.3): one PTR query and at most 10 address queries per check, cached; "unknown"
   when none validates or DNS fails.

``exp=`` is checked for syntax and otherwise ignored: we never send its text to anyone.
Results: pass, fail, softfail, neutral, none, temperror, permerror.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from dataclasses import dataclass, field

import dns.asyncresolver
import dns.rdata
import dns.reversename
from dns.rdtypes.ANY.MX import MX
from dns.rdtypes.ANY.PTR import PTR
from dns.rdtypes.IN.A import A
from dns.rdtypes.IN.AAAA import AAAA

from relay.authn.dnsutil import Deadline, DnsTempError, lookup, of_type, txt_bytes
from relay.core.errors import SpfPermError

MAX_LOOKUPS = 10
MAX_VOID = 2
MAX_NAMES = 10
_QUALIFIERS = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}
_DOMAIN = re.compile(
    r"^(?=.{1,253}$)([A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.)+"
    r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?$"
)
# §12 grammar pieces.
_MACRO_EXPAND = re.compile(r"%\{([a-zA-Z])(\d*)([rR]?)([.\-+,/_=]*)\}|%[%_-]")
_MACRO_LITERAL = re.compile(r"[\x21-\x24\x26-\x7e]+")
_DOMAIN_LETTERS = set("slodiphv")  # c, r and t are for exp text only (§7.1)
_ALL_LETTERS = _DOMAIN_LETTERS | set("crt")
_TOPLABEL = re.compile(r"[A-Za-z0-9]*[A-Za-z][A-Za-z0-9]*|[A-Za-z0-9]+-[A-Za-z0-9-]*[A-Za-z0-9]")
_MODIFIER = re.compile(r"([A-Za-z][A-Za-z0-9_.-]*)=(.*)", re.DOTALL)
_MECHANISM = re.compile(r"([+\-~?]?)([A-Za-z][A-Za-z0-9]*)(.*)", re.DOTALL)
_QNUM = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])"
_IP4 = re.compile(rf":({_QNUM}(?:\.{_QNUM}){{3}})(?:/(0|[1-9][0-9]?))?")
_IP6 = re.compile(r":([0-9A-Fa-f:.]+)(?:/(0|[1-9][0-9]{0,2}))?")
_DUAL_CIDR = re.compile(r"(.*?)(?:/(0|[1-9][0-9]?))?(?://(0|[1-9][0-9]{0,2}))?", re.DOTALL)


PermError = SpfPermError  # relay.core.errors: the SPF result is permerror


@dataclass(frozen=True)
class _Directive:
    qualifier: str  # pass | fail | softfail | neutral
    mechanism: str  # all include a mx ptr ip4 ip6 exists
    domain: str | None = None  # domain-spec, unexpanded
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    cidr4: int | None = None
    cidr6: int | None = None


@dataclass(frozen=True)
class _Record:
    directives: tuple[_Directive, ...]
    redirect: str | None


@dataclass
class _Ctx:
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    sender: str
    helo: str
    resolver: dns.asyncresolver.Resolver
    deadline: Deadline
    lookups: int = 0
    voids: int = 0
    ptr_names: list[str] | DnsTempError | None = None  # PTR names of ip; None: not asked
    validated: dict[str, bool] = field(default_factory=dict)

    def count(self) -> None:
        self.lookups += 1
        if self.lookups > MAX_LOOKUPS:
            raise PermError("too many DNS lookups")

    async def query(self, name: str, rtype: str) -> list[dns.rdata.Rdata]:
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


# ----------------------------------------------------------------------------- syntax
def _check_macro_string(text: str, letters: set[str]) -> bool:
    """Is ``text`` a macro-string (§7.1) using only ``letters``? Returns True when it ends
    in a macro-expand (which may stand for a whole domain-end)."""
    pos, ends_in_macro = 0, False
    while pos < len(text):
        m = _MACRO_EXPAND.match(text, pos)
        if m is not None:
            if m.group(1) is not None and m.group(1).lower() not in letters:
                raise PermError(f"macro letter {m.group(1)!r} not allowed here")
            if m.group(2) and int(m.group(2)) == 0:
                raise PermError("macro keeping zero labels")  # §7.3: DIGIT is nonzero
            pos, ends_in_macro = m.end(), True
            continue
        lit = _MACRO_LITERAL.match(text, pos)
        if lit is None:
            raise PermError("bad macro syntax")
        pos, ends_in_macro = lit.end(), False
    return ends_in_macro


def _check_domain_spec(spec: str | None) -> str:
    """A domain-spec (§7.1): a macro-string ending in a macro or in ``.toplabel[.]``."""
    if not spec:
        raise PermError("empty domain-spec")
    if _check_macro_string(spec, _DOMAIN_LETTERS):
        return spec
    tail = spec[max((m.end() for m in _MACRO_EXPAND.finditer(spec)), default=0) :]
    tail = tail[:-1] if tail.endswith(".") else tail
    _, dot, top = tail.rpartition(".")
    if not dot or not _TOPLABEL.fullmatch(top):
        raise PermError(f"domain-spec {spec!r} lacks a valid top label")
    return spec


def _parse_directive(term: str) -> _Directive:
    m = _MECHANISM.fullmatch(term)
    if m is None:
        raise PermError(f"unknown term {term!r}")
    qualifier = _QUALIFIERS[m.group(1) or "+"]
    name, rest = m.group(2).lower(), m.group(3)
    if name == "all":
        if rest:
            raise PermError("all takes no argument")
        return _Directive(qualifier, name)
    if name in ("include", "exists"):
        if not rest.startswith(":"):
            raise PermError(f"{name} needs a domain")
        return _Directive(qualifier, name, _check_domain_spec(rest[1:]))
    if name == "ptr":
        if rest and not rest.startswith(":"):
            raise PermError("ptr takes no CIDR length")
        return _Directive(qualifier, name, _check_domain_spec(rest[1:]) if rest else None)
    if name in ("a", "mx"):
        dm = _DUAL_CIDR.fullmatch(rest)
        assert dm is not None  # the pattern matches any string
        spec, v4, v6 = dm.group(1), dm.group(2), dm.group(3)
        if spec and not spec.startswith(":"):
            raise PermError(f"bad {name} argument")
        cidr4 = int(v4) if v4 is not None else None
        cidr6 = int(v6) if v6 is not None else None
        if (cidr4 is not None and cidr4 > 32) or (cidr6 is not None and cidr6 > 128):
            raise PermError("bad CIDR length")
        domain = _check_domain_spec(spec[1:]) if spec else None
        return _Directive(qualifier, name, domain, cidr4=cidr4, cidr6=cidr6)
    if name == "ip4":
        im = _IP4.fullmatch(rest)
        plen = int(im.group(2)) if im is not None and im.group(2) else 32
        if im is None or plen > 32:
            raise PermError("bad ip4 network")
        return _Directive(
            qualifier, name, network=ipaddress.IPv4Network(f"{im.group(1)}/{plen}", strict=False)
        )
    if name == "ip6":
        im = _IP6.fullmatch(rest)
        plen = int(im.group(2)) if im is not None and im.group(2) else 128
        if im is None or plen > 128:
            raise PermError("bad ip6 network")
        try:
            net = ipaddress.IPv6Network(f"{im.group(1)}/{plen}", strict=False)
        except ValueError:
            raise PermError("bad ip6 network") from None
        return _Directive(qualifier, name, network=net)
    raise PermError(f"unknown mechanism {name!r}")


def parse_record(record: str) -> _Record:
    """Parse and validate a whole SPF record (§4.6, §12); PermError on any syntax error."""
    if any(not (" " <= ch <= "~") for ch in record):
        raise PermError("control or non-ASCII character in record")
    directives: list[_Directive] = []
    modifiers: dict[str, str] = {}
    for term in record.split(" ")[1:]:
        if not term:
            continue
        mod = _MODIFIER.fullmatch(term)
        if mod is None:
            directives.append(_parse_directive(term))
            continue
        name, value = mod.group(1).lower(), mod.group(2)
        if name in ("redirect", "exp"):
            if name in modifiers:
                raise PermError(f"{name}= given twice")
            modifiers[name] = _check_domain_spec(value)
        else:  # unknown modifiers are ignored, but must be well-formed (§6)
            _check_macro_string(value, _ALL_LETTERS)
    return _Record(tuple(directives), modifiers.get("redirect"))


# ----------------------------------------------------------------------------- macros
async def _p_value(ctx: _Ctx, domain: str) -> str:
    """The ``%{p}`` value (§7.3): a validated name of the client, preferring ``domain``,
    then its subdomains, then any; "unknown" when none validates or DNS fails."""
    try:
        names = [n for n in await _ptr_names(ctx) if await _validate(ctx, n)]
    except DnsTempError:
        return "unknown"
    domain = domain.lower().rstrip(".")
    exact = [n for n in names if n == domain]
    below = [n for n in names if n.endswith("." + domain)]
    return (exact or below or names or ["unknown"])[0]


async def expand(spec: str, ctx: _Ctx, domain: str) -> str:
    """Expand RFC 7208 §7 macros in a domain-spec already checked by ``parse_record``."""
    if "%" not in spec:
        return spec
    local, _, sdomain = ctx.sender.rpartition("@")
    if isinstance(ctx.ip, ipaddress.IPv4Address):
        i_val, v_val = str(ctx.ip), "in-addr"
    else:
        i_val, v_val = ".".join(ctx.ip.exploded.replace(":", "")), "ip6"
    values = {"s": ctx.sender, "l": local, "o": sdomain, "d": domain, "i": i_val,
              "v": v_val, "h": ctx.helo}  # fmt: skip
    if "%{p" in spec.lower():
        values["p"] = await _p_value(ctx, domain)

    def repl(m: re.Match[str]) -> str:
        if m.group(1) is None:
            return {"%%": "%", "%_": " ", "%-": "%20"}[m.group(0)]
        letter, digits, rev, delims = m.groups()
        parts = re.split("[" + re.escape(delims or ".") + "]", values[letter.lower()])
        if rev:
            parts.reverse()
        if digits:
            parts = parts[-int(digits) :]
        out = ".".join(parts)
        return urllib.parse.quote(out, safe="") if letter.isupper() else out

    out = _MACRO_EXPAND.sub(repl, spec)
    while len(out.rstrip(".")) > 253 and "." in out:  # §4.8: drop labels from the left
        out = out.split(".", 1)[1]
    return out


# ----------------------------------------------------------------------------- evaluation
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
    records = await ctx.query(name, rtype)
    return [r.address for r in (of_type(records, A) if rtype == "A" else of_type(records, AAAA))]


async def _ptr_names(ctx: _Ctx) -> list[str]:
    """The client's first 10 PTR names, asked once per check (§4.6.4); a DNS error is
    remembered too, so a record full of ``%{p}`` costs one timeout, not one each."""
    if ctx.ptr_names is None:
        rev = dns.reversename.from_address(str(ctx.ip)).to_text()
        try:
            records, _ = await lookup(ctx.resolver, rev, "PTR", ctx.deadline)
        except DnsTempError:
            ctx.ptr_names = DnsTempError("PTR")
            raise
        ctx.ptr_names = [
            r.target.to_text().lower().rstrip(".") for r in of_type(records[:MAX_NAMES], PTR)
        ]
    if isinstance(ctx.ptr_names, DnsTempError):
        raise DnsTempError("PTR lookup failed before")
    return ctx.ptr_names


async def _validate(ctx: _Ctx, name: str) -> bool:
    """Does ``name`` resolve back to the client (§5.5)? A DNS error just means no."""
    if name not in ctx.validated:
        rtype = "A" if ctx.ip.version == 4 else "AAAA"
        try:
            records, _ = await lookup(ctx.resolver, name, rtype, ctx.deadline)
        except DnsTempError:
            records = []
        found = of_type(records, A) if rtype == "A" else of_type(records, AAAA)
        ctx.validated[name] = any(_in_net(ctx, r.address, None, None) for r in found)
    return ctx.validated[name]


async def _mechanism(ctx: _Ctx, d: _Directive, domain: str) -> bool:
    """Does the directive match? Raises PermError / DnsTempError."""
    mech = d.mechanism
    if mech == "all":
        return True
    if mech in ("ip4", "ip6"):
        assert d.network is not None
        return d.network.version == ctx.ip.version and ctx.ip in d.network
    ctx.count()
    target = (await expand(d.domain, ctx, domain)).rstrip(".") if d.domain else domain
    if mech == "a":
        return any(_in_net(ctx, a, d.cidr4, d.cidr6) for a in await _addresses(ctx, target))
    if mech == "mx":
        mxs = await ctx.query(target, "MX")
        if len(mxs) > MAX_NAMES:
            raise PermError("too many MX names")
        for mx in of_type(mxs, MX):
            host = mx.exchange.to_text().rstrip(".")
            if host and any(_in_net(ctx, a, d.cidr4, d.cidr6) for a in await _addresses(ctx, host)):
                return True
        return False
    if mech == "ptr":
        target = target.lower()
        try:  # §5.5: a DNS error on the PTR query means no match
            names = await _ptr_names(ctx)
        except DnsTempError:
            return False
        if not names:
            ctx.voids += 1
            if ctx.voids > MAX_VOID:
                raise PermError("too many void lookups")
        for host in names:
            if (host == target or host.endswith("." + target)) and await _validate(ctx, host):
                return True
        return False
    if mech == "exists":
        return bool(await ctx.query(target, "A"))
    # include
    result = await _check_host(ctx, target)
    if result == "pass":
        return True
    if result in ("fail", "softfail", "neutral"):
        return False
    if result == "temperror":
        raise DnsTempError("include")
    raise PermError("include of a domain without a usable record")


async def _check_host(ctx: _Ctx, domain: str) -> str:
    """RFC 7208 §4 check_host(); returns a result string, never raises."""
    domain = domain.rstrip(".")
    if not is_domain(domain):
        return "none"
    try:
        records, _ = await lookup(ctx.resolver, domain, "TXT", ctx.deadline)
    except DnsTempError:
        return "temperror"
    spf = [t for t in txt_bytes(records) if t[:7].lower() in (b"v=spf1", b"v=spf1 ")]
    if not spf:
        return "none"
    if len(spf) > 1:
        return "permerror"
    try:
        record = parse_record(spf[0].decode("latin-1"))
        for directive in record.directives:
            if await _mechanism(ctx, directive, domain):
                return directive.qualifier
        if record.redirect is not None:
            ctx.count()
            target = await expand(record.redirect, ctx, domain)
            result = await _check_host(ctx, target)
            return "permerror" if result == "none" else result
        return "neutral"
    except PermError:
        return "permerror"
    except DnsTempError:
        return "temperror"


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
    local, at, sdomain = sender.rpartition("@")
    if not at:
        local, sdomain = "", sender
    sender = f"{local or 'postmaster'}@{sdomain}"  # §4.3: no local part -> postmaster
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
    """SPF for an SMTP session: the MAIL FROM identity, or HELO for the null sender (§2.4)."""
    helo = helo.strip().rstrip(".")
    mail_from = mail_from.strip().strip("<>")
    if "@" in mail_from:
        domain, sender = mail_from.rpartition("@")[2], mail_from
    elif mail_from:
        domain, sender = mail_from, f"postmaster@{mail_from}"
    else:
        domain, sender = helo, f"postmaster@{helo}"
    return await check_host(ip, domain, sender, helo=helo, resolver=resolver, deadline=deadline)
