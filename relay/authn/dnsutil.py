"""DNS lookups for authentication, with errors folded into three outcomes.

SPF, DKIM and DMARC all need the same distinction: an answer (possibly empty, a "void"
lookup), or a temporary failure (timeout, SERVFAIL) that must turn into 451 and never into
a permanent reject or a pass.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TypeVar

import dns.asyncresolver
import dns.exception
import dns.name
import dns.rdata
import dns.resolver
from dns.rdtypes.txtbase import TXTBase

from relay.core.errors import DnsTempError as DnsTempError

R = TypeVar("R", bound=dns.rdata.Rdata)


@dataclass
class Deadline:
    """An absolute time budget shared by every lookup of one check."""

    at: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(time.monotonic() + seconds)

    def remaining(self) -> float:
        left = self.at - time.monotonic()
        if left <= 0:
            raise DnsTempError("time budget exhausted")
        return left


async def lookup(
    resolver: dns.asyncresolver.Resolver, name: str, rtype: str, deadline: Deadline
) -> tuple[list[dns.rdata.Rdata], bool]:
    """Return ``(records, void)``; ``void`` is True for NXDOMAIN or an empty answer.

    Raises DnsTempError for anything temporary. Names are taken as absolute (no search
    list), because a search suffix would let a local zone answer for a sender's domain.
    """
    try:
        qname = dns.name.from_text(name.rstrip(".") + ".")
    except (dns.exception.DNSException, UnicodeError, ValueError):
        return [], True
    try:
        answer = await resolver.resolve(
            qname,
            rtype,
            search=False,
            raise_on_no_answer=False,
            lifetime=min(resolver.lifetime, deadline.remaining()),
        )
    except dns.resolver.NXDOMAIN:
        return [], True
    except dns.resolver.NoAnswer:
        return [], True
    except (dns.exception.Timeout, dns.resolver.NoNameservers) as err:
        raise DnsTempError(type(err).__name__) from None
    except dns.resolver.YXDOMAIN:
        return [], True
    except dns.exception.DNSException as err:
        raise DnsTempError(type(err).__name__) from None
    records = list(answer.rrset) if answer.rrset is not None else []
    return records, not records


def of_type(records: list[dns.rdata.Rdata], kind: type[R]) -> list[R]:
    """The records that are ``kind``. An answer holds only the type asked for, so this
    drops nothing; it gives the records their type (``.address``, ``.target``...)."""
    return [r for r in records if isinstance(r, kind)]


def txt_strings(records: list[dns.rdata.Rdata]) -> list[str]:
    """Join each TXT record's character strings (RFC 7208 §3.3, RFC 6376 §3.6.2.2)."""
    out = []
    for r in records:
        strings = getattr(r, "strings", None)
        if strings is not None:
            out.append(b"".join(strings).decode("utf-8", "replace"))
    return out


def txt_bytes(records: list[dns.rdata.Rdata]) -> list[bytes]:
    """Each TXT record's character strings joined, as bytes (for callers that must reject
    non-ASCII rather than guess an encoding, like SPF, RFC 7208 §3.3 and §4.5)."""
    return [b"".join(r.strings) for r in records if isinstance(r, TXTBase)]
