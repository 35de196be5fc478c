"""Links: find them in text and decide what each one is (spec: external_link and friends).

A link is judged by its target: ``http`` is never allowed; ``https`` to the marketplace, a
carrier, a listed allow-domain, or carrying this order's id is allowed; messaging apps,
social profiles, shorteners and unsubscribe pages have their own kinds. Look-alike hosts
of the known domains are ``deceptive_link``.
"""

from __future__ import annotations

import functools
import re
import urllib.parse
from dataclasses import dataclass

import regex
from publicsuffixlist import PublicSuffixList

from relay.policy.config import Policy
from relay.policy.model import PolicyContext

URL_RE = re.compile(
    r"(?:(?:https?|ftp)://|www\.)[^\s<>\"'\]\[{}|\\^`]+"
    r"|(?:mailto|tel|callto|sms|whatsapp|tg|viber|skype):[^\s<>\"']+"
    r"|(?<![\w@.\-/])(?:[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?\.)+(?:xn--[a-z0-9\-]{2,59}|[a-z]{2,24})"
    r"(?![\w\-@])(?:/[^\s<>\"']*)?",
    re.IGNORECASE,
)
_PSL = PublicSuffixList()
# suffixes that are also everyday file extensions: "setup.py", "archive.zip" are files
# unless written with a scheme, www. or a path
_FILE_LIKE = frozenset({"zip", "mov", "md", "py", "sh", "rs", "ps", "cc", "cs", "pm", "ml",
                        "so"})


@functools.lru_cache(maxsize=8192)
def registrable(host: str) -> str | None:
    """The registrable domain of ``host`` under a real public suffix (PSL), else None."""
    host = host.lower().rstrip(".")
    try:
        return _PSL.privatesuffix(host, accept_unknown=False)
    except Exception:
        return None


def bare_domain_ok(cand: str) -> bool:
    """Is a scheme-less ``cand`` (``shop.ai/x``) a real domain rather than prose or a file?

    It needs a registrable domain under a real public suffix; a title-case last label
    (``yesterday.Best``) is a missing space after a full stop; a suffix that is also a file
    extension (``setup.py``) counts only with a path after it.
    """
    if cand.lower().startswith(("www.", "http://", "https://", "ftp://")) or ":" in cand[:8]:
        return True
    host, slash, _ = cand.partition("/")
    tld = host.rsplit(".", 1)[-1]
    if len(tld) > 1 and tld[0].isupper() and tld[1:].islower():
        return False
    if tld.lower() in _FILE_LIKE and not slash:
        return False
    return registrable(host) is not None


_TRAIL = ".,;:!?)>»”’'\""
_HOMO = str.maketrans({
    "а": "a", "е": "e", "о": "o", "р": "p", "с": "c", "у": "y", "х": "x", "і": "i", "ј": "j",
    "ѕ": "s", "ԁ": "d", "ɡ": "g", "ο": "o", "α": "a", "ν": "v", "ι": "i", "κ": "k", "τ": "t",
    "0": "o", "1": "l", "|": "l", "!": "l",
})
_TRACKY = regex.compile(
    r"(?:^|[./])(?:trk|track|tracking|ctrk|click|clicks|open|opens|pixel|beacon|mailtrack|"
    r"list-manage|email|em|links?|mailing\w*)[.\-]"
    r"|/(?:o|open|opens|p|t|track|trk|pixel|beacon|wf/open|e/o|ss/o|imp)(?:/|\.gif|\.png|\?|$)"
    r"|(?:open|pixel|beacon|track)\w*\.(?:gif|png)",
    regex.IGNORECASE,
)
_OPT_OUT_URL = regex.compile(
    r"unsub|opt-?out|abmeld|afmeld|désinscri|desinscri|disiscri|wypisz|/baja\b|preferences|"
    r"subscriptions?/manage|list-manage|/manage\?|rmftlp",
    regex.IGNORECASE,
)


@dataclass(frozen=True)
class LinkVerdict:
    kind: str          # external_link, messaging_app_link, social_handle, opt_out_link, ...
    allowed: bool
    rule: str


_REDIRECTORS = {"safelinks.protection.outlook.com": "url", "www.google.com": "q",
                "google.com": "q", "l.facebook.com": "u"}


def unwrap(url: str) -> str:
    """The real target behind a mail client's safety redirect (Outlook Safe Links ...)."""
    for _ in range(3):
        host = host_of(url)
        key = next((v for k, v in _REDIRECTORS.items() if host == k or host.endswith("." + k)),
                   None)
        if key is None:
            return url
        try:
            inner = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query).get(key, [""])[0]
        except ValueError:
            return url
        if not inner.lower().startswith(("http://", "https://")):
            return url
        url = inner
    return url


def clean_url(raw: str) -> str:
    """Strip trailing punctuation a URL does not own (but keep balanced parentheses)."""
    url = raw
    while url and url[-1] in _TRAIL:
        if url[-1] == ")" and url.count("(") >= url.count(")"):
            break
        url = url[:-1]
    return url


@functools.lru_cache(maxsize=4096)
def host_of(url: str) -> str:
    u = url if "://" in url else "http://" + url
    try:
        host = urllib.parse.urlsplit(u).hostname or ""
    except ValueError:
        return ""
    if "xn--" in host:
        try:
            host = host.encode("ascii").decode("idna")
        except UnicodeError:
            pass
    return host.lower().rstrip(".")


@functools.lru_cache(maxsize=64)
def _domain_set(domains: tuple[str, ...]) -> frozenset[str]:
    return frozenset(d.lower() for d in domains)


def on(host: str, domains: list[str]) -> bool:
    """Is ``host`` one of ``domains`` or a subdomain of one?"""
    if not host:
        return False
    ds = _domain_set(tuple(domains))
    labels = host.split(".")
    return any(".".join(labels[i:]) in ds for i in range(len(labels)))


def skeleton(host: str) -> str:
    s = host.lower().translate(_HOMO)
    return s.replace("rn", "m").replace("vv", "w").replace("cl", "d")


@functools.lru_cache(maxsize=16)
def _skeletons(known: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    return tuple((k, skeleton(k)) for k in known)


_LATIN = regex.compile(r"[a-z]")
_OTHER_SCRIPT = regex.compile(r"[\p{Cyrillic}\p{Greek}\p{Armenian}\p{Cherokee}]")


def lookalike(host: str, policy: Policy) -> str | None:
    """The known domain ``host`` imitates without being it, else None.

    A label mixing Latin letters with Cyrillic or Greek ones is a homoglyph by itself.
    """
    d = policy.file.domains
    return _lookalike(host, tuple(d.marketplace + d.carriers + d.allow))


@functools.lru_cache(maxsize=4096)
def _lookalike(host: str, known: tuple[str, ...]) -> str | None:
    if not host or on(host, list(known)):
        return None
    for label in host.split("."):
        if _LATIN.search(label) and _OTHER_SCRIPT.search(label):
            return label
    sk = skeleton(host)
    dotted = f".{host}."
    for k, ks in _skeletons(known):
        if sk == ks or sk.endswith("." + ks) or f".{k}." in dotted:
            return k   # look-alike, or the known domain worn as a subdomain prefix
    return None


def is_tracky(url: str) -> bool:
    return bool(_TRACKY.search(url))


def classify(url: str, ctx: PolicyContext, policy: Policy, near: str = "") -> LinkVerdict:
    """Judge one link target; ``near`` is the text around it (for opt-out footers)."""
    d = policy.file.domains
    url = unwrap(url)
    low = url.lower()
    scheme = low.split(":", 1)[0] if ":" in low.split("/", 1)[0] else ""
    if scheme in ("whatsapp", "tg", "viber", "skype"):
        return LinkVerdict("messaging_app_link", False, "link.messaging")
    host = host_of(url)
    if on(host, d.messaging):
        return LinkVerdict("messaging_app_link", False, "link.messaging")
    if on(host, d.social):
        return LinkVerdict("social_handle", False, "link.social")
    if lookalike(host, policy):
        return LinkVerdict("deceptive_link", False, "deceptive_link")
    if _OPT_OUT_URL.search(low) or (near and policy.lexicon.search("opt_out", near)):
        return LinkVerdict("opt_out_link", False, "link.opt_out")
    if on(host, d.shorteners):
        return LinkVerdict("external_link", False, "link.external")
    if scheme not in ("https", ""):
        return LinkVerdict("external_link", False, "link.external")
    if on(host, d.marketplace + d.carriers + d.allow):
        return LinkVerdict("external_link", True, "link.external")
    order = ctx.order_id
    if scheme == "https" and order and (order in url or order.replace("-", "") in url):
        return LinkVerdict("external_link", True, "link.external")
    return LinkVerdict("external_link", False, "link.external")


def mismatch(shown: str, target: str) -> bool:
    """Does a link labelled ``shown`` (a URL or domain) really lead somewhere else?"""
    sh, th = host_of(unwrap(shown)), host_of(unwrap(target))
    return bool(sh and th and not (sh == th or sh.endswith("." + th) or th.endswith("." + sh)))


def looks_like_url(text: str) -> str | None:
    """The URL or domain a link *label* shows, if it shows one (for text/target mismatch)."""
    m = next((m for m in URL_RE.finditer(text.strip()) if bare_domain_ok(m.group())), None)
    if not m or m.group().lower().startswith(("tel:", "mailto:")):
        return None
    return clean_url(m.group())
