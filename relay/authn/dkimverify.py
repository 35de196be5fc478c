"""DKIM verification (RFC 6376) with dkimpy, keys fetched asynchronously beforehand.

dkimpy's own DNS access is synchronous, so we read each signature's ``d=``/``s=``, fetch the
key TXT record with dnspython under the shared deadline, and hand dkimpy a ``dnsfunc`` that
only returns what we prefetched. The CPU part runs in a worker thread.

Signatures with ``a=rsa-sha1`` fail (RFC 8301). A signature with ``l=`` shorter than the
canonical body verifies in dkimpy but is reported here as ``fail`` with
``body_truncated=True``: anything could have been appended.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import dkim
import dns.asyncresolver

from relay.authn.dnsutil import Deadline, DnsTempError, lookup, txt_strings
from relay.authn.fromaddr import FromError, a_label

MAX_SIGNATURES = 5
_quiet = logging.getLogger("relay.authn.dkim")
_quiet.addHandler(logging.NullHandler())
_quiet.propagate = False


@dataclass(frozen=True)
class DkimResult:
    """One signature's outcome: pass, fail, neutral, temperror or permerror."""

    domain: str
    selector: str
    result: str
    reason: str = ""
    body_truncated: bool = False
    signs_to: bool = False  # h= covers To (with once-only To, exactly the one there is)
    signs_cc: bool = False  # h= covers Cc

    def as_dict(self) -> dict[str, object]:
        return {
            "domain": self.domain,
            "selector": self.selector,
            "result": self.result,
            "reason": self.reason,
            "body_truncated": self.body_truncated,
            "signs_to": self.signs_to,
            "signs_cc": self.signs_cc,
        }


def _signatures(raw: bytes) -> tuple[dkim.DKIM | None, list[dict[bytes, bytes] | None]]:
    try:
        d = dkim.DKIM(raw, logger=_quiet)
    except Exception:
        return None, []
    sigs: list[dict[bytes, bytes] | None] = []
    count = sum(1 for name, _ in d.headers if name.lower() == b"dkim-signature")
    for idx in range(min(count, MAX_SIGNATURES)):
        try:
            prep = d.verify_headerprep(idx)
            sigs.append(prep[0] if prep else None)
        except Exception:
            sigs.append(None)
    return d, sigs


def _verify_one(
    raw: bytes, idx: int, key: bytes | None
) -> tuple[str, str, bool, tuple[bool, bool]]:
    """Run dkimpy on one signature with a prefetched key (thread worker)."""

    def dnsfunc(name: bytes, timeout: float = 5) -> bytes | None:
        return key

    try:
        d = dkim.DKIM(raw, logger=_quiet)
        ok = d.verify(idx=idx, dnsfunc=dnsfunc)
    except dkim.ValidationError as err:
        msg = str(err)
        reason = "body hash mismatch" if "body hash" in msg else "invalid signature"
        return "fail", reason, False, (False, False)
    except Exception:  # dkim.DKIMException and parser errors on hostile input
        return "permerror", "malformed signature or key", False, (False, False)
    if not ok:
        return "fail", "signature did not verify", False, (False, False)
    sig = d.signature_fields
    signed = [h.strip().lower() for h in sig.get(b"h", b"").split(b":")]
    # What h= names is what the signature vouches for; a field it does not name could
    # have been added by anyone (relay.authn.replay reads these flags).
    signs_to = (b"to" in signed, b"cc" in signed)
    if b"l" in sig:
        canon = dkim.CanonicalizationPolicy.from_c_value(sig.get(b"c", b"simple/simple"))
        if int(sig[b"l"]) < len(canon.canonicalize_body(d.body)):
            return "fail", "signature covers only part of the body", True, signs_to
    if b"from" not in signed:
        return "fail", "From is not signed", False, signs_to
    return "pass", "", False, signs_to


def _domain(value: bytes) -> str:
    """``d=`` as a lower-case A-label: RFC 8616 §4 lets an EAI signer write U-labels, and
    both alignment and the key lookup need the A-label form."""
    text = value.decode("utf-8", "replace")
    try:
        return a_label(text)
    except FromError:
        return text.lower()  # no valid IDN: its key lookup and alignment fail on their own


async def _check(
    raw: bytes,
    idx: int,
    sig: dict[bytes, bytes] | None,
    resolver: dns.asyncresolver.Resolver,
    deadline: Deadline,
) -> DkimResult:
    if sig is None:
        return DkimResult("", "", "permerror", "malformed signature")
    domain = _domain(sig.get(b"d", b""))
    selector = sig.get(b"s", b"").decode("ascii", "replace")
    if sig.get(b"a", b"").lower() == b"rsa-sha1":  # RFC 8301 §3.1: never valid
        return DkimResult(domain, selector, "fail", "rsa-sha1 is not accepted")
    name = f"{selector}._domainkey.{domain}"
    try:
        records, void = await lookup(resolver, name, "TXT", deadline)
    except DnsTempError:
        return DkimResult(domain, selector, "temperror", "key lookup failed temporarily")
    texts = txt_strings(records)
    if void or not texts:
        return DkimResult(domain, selector, "permerror", "no key published")
    key = texts[0].encode()
    try:
        result, reason, truncated, signs_to = await asyncio.wait_for(
            asyncio.to_thread(_verify_one, raw, idx, key), deadline.remaining()
        )
    except (TimeoutError, DnsTempError):
        return DkimResult(domain, selector, "temperror", "verification timed out")
    if result == "fail" and not reason.startswith("signature covers"):
        tags = dict(
            (p.split("=", 1)[0].strip(), p.split("=", 1)[1].strip())
            for p in texts[0].split(";")
            if "=" in p
        )
        if tags.get("p", None) == "":
            reason = "key revoked"
    return DkimResult(domain, selector, result, reason, truncated, *signs_to)


async def verify_all(
    raw: bytes, resolver: dns.asyncresolver.Resolver, deadline: Deadline
) -> tuple[DkimResult, ...]:
    """Verify up to MAX_SIGNATURES signatures concurrently; () when the message has none."""
    _, sigs = await asyncio.to_thread(_signatures, raw)  # dkimpy parses the whole message
    results = await asyncio.gather(
        *(_check(raw, i, s, resolver, deadline) for i, s in enumerate(sigs))
    )
    return tuple(results)
