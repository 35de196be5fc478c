"""Token detection in one piece of text: emails, phones, links, handles, emoji.

Runs on the normalised text (see :mod:`.normalize`) and reports spans of the *original*
text, so the caller can cut exactly what the sender wrote.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass

import phonenumbers
import regex

from relay.policy import links
from relay.policy.config import Policy
from relay.policy.detect.normalize import DigitWords, NormText, normalize
from relay.policy.model import PolicyContext


@dataclass(frozen=True)
class Hit:
    kind: str
    rule: str
    start: int
    end: int
    excerpt: str
    allowed: bool = False
    cut: bool = True        # False: reported, but its span is cut as part of another hit
    sentence: bool = False  # a whole sentence (unsubscribe footer), not a single token


EMAIL_RE = re.compile(
    r"(?<![\w.%+\-])[\w][\w.%+\-]*@[\w](?:[\w\-]*\w)?(?:\.[\w](?:[\w\-]*\w)?)*\.[^\W\d_]{2,24}(?![\w\-])"
)
_LINE_JOIN = regex.compile(r"(?<=\d)[ \t]*\n[ \t]*(?=\d)")
PHONE_CAND = regex.compile(
    r"(?<![\w.,/+\-])(?:\+\s?|00|\(\s?)?\d(?:[\d\-./()]|[ \t](?=[\d(]))*\d(?![\w]|[.,]\d)"
)
_MASKS = [
    r"\b\d{3}-\d{7}-\d{7}\b",                                     # order ids
    r"(?<![\d./\-])(?:\d{1,2}[./\-]\d{1,2}[./\-](?:\d{4}|\d{2})|\d{4}[./\-]\d{1,2}[./\-]\d{1,2})\b"
    r"(?![./\-]\d)",                                               # dates
    r"\b\d{1,2}(?::\d{2}|h\d{2})\b(?!\s?\d)"                         # times
    r"|\b\d{1,2}\.\d{2}\s?(?:Uhr|h|am|pm|a\.m\.|p\.m\.)",
    r"(?:[€$£¥]|EUR|USD|GBP|PLN|JPY)\s?\d[\d.,\s]*\d|\b\d[\d.,]*\s?(?:€|EUR|USD|GBP|zł|PLN|円|yen)",
    r"\b\d+(?:[.,]\d+)?\s?(?:mm|cm|km|m|kg|g|mg|W|kW|Wh|kWh|V|Ah|mAh|ml|cl|l|L|°C|°F|%|rpm|lux|GB|TB|MB|in|ft|lbs?|oz|Hz|pcs|St\.?)\b",
    r"\b(?:ATU\d{8}|DE\d{9}|FR[0-9A-Z]{2}\d{9}|ESX?\d{8}[0-9A-Z]?|IT\d{11}|NL\d{9}B\d{2}|PL\d{10})\b",
    r"\b[A-Z]{2}\d{2}(?:\s?[A-Z0-9]{4}){3,7}(?:\s?[A-Z0-9]{1,4})?\b",  # IBAN
    r"\b1Z[\s0-9A-Z]{16,22}\b",                                     # UPS
    r"(?<![\w-])(?=[\w-]*\d)(?=[\w-]*[A-Za-z])[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*(?![\w-])",
    r"\b\d{13,}\b",
]
MASK_RE = re.compile("|".join(f"(?:{m})" for m in _MASKS))
HANDLE_RE = regex.compile(
    r"(?<![\w@.\-/])@([A-Za-z0-9_][A-Za-z0-9_.\-]{1,29}[A-Za-z0-9_])(?![\w@])")
COLON_TOKEN = regex.compile(
    r"\s*(?:\w+\s+)?(?:[:：]|is|ist|est|es|è|jest|=)\s*(@?[A-Za-z0-9_][A-Za-z0-9_.\-]{2,30})")
USER_TOKEN = regex.compile(r"\s*[:：]?\s*(@?[A-Za-z0-9_][A-Za-z0-9_.\-]{2,30})")
EMOJI_RE = regex.compile(
    r"[\U0001F1E6-\U0001F1FF]{2}|[0-9#*]\uFE0F?\u20E3"
    r"|\p{Extended_Pictographic}[\uFE0F\U0001F3FB-\U0001F3FF]*"
    r"(?:\u200D\p{Extended_Pictographic}[\uFE0F\U0001F3FB-\U0001F3FF]*)*"
)
_EMOJI_PRES = regex.compile(r"\p{Emoji_Presentation}|\uFE0F|\u20E3|[\U0001F1E6-\U0001F1FF]")


# Whitespace-delimited tokens holding a character every match of a pattern needs: a
# pattern whose matches never cross whitespace (addresses, URLs, handles) finds exactly
# the same matches run on those tokens alone (its look-arounds see whitespace or an end
# on both sides either way), and most of a text is prose it no longer has to try.
_AT_TOKEN = re.compile(r"(?<!\S)[^\s@]*@\S*")
_DOT_TOKEN = re.compile(r"(?<!\S)[^\s.:]*[.:]\S*")


def in_tokens(
    rx: re.Pattern[str] | regex.Pattern[str], token: re.Pattern[str], text: str
) -> Iterator[re.Match[str] | regex.Match[str]]:
    """``rx.finditer(text)`` for a pattern that never matches across whitespace."""
    for t in token.finditer(text):
        yield from rx.finditer(text, t.start(), t.end())


_DIGIT_RUN = re.compile(r"\d[\d\s\-./()]{5,}\d")
_MARGIN = 40


def _masked(t: str) -> str:
    """``t`` with ids, dates, amounts and codes overwritten by ``§`` (same length).

    Masks only matter where a phone could be: a run of 7+ digit characters. The mask
    patterns run on windows around those runs (widened to whitespace, so a window
    starts and ends where a token does), not over the whole text.
    """
    windows: list[list[int]] = []
    for m in _DIGIT_RUN.finditer(t):
        a, b = max(0, m.start() - _MARGIN), min(len(t), m.end() + _MARGIN)
        while a > 0 and not t[a - 1].isspace():
            a -= 1
        while b < len(t) and not t[b].isspace():
            b += 1
        if windows and a <= windows[-1][1]:
            windows[-1][1] = max(windows[-1][1], b)
        else:
            windows.append([a, b])
    if not windows:
        return t
    out, pos = [], 0
    for a, b in windows:
        out.append(t[pos:a])
        out.append(MASK_RE.sub(lambda m: "§" * len(m.group()), t[a:b]))
        pos = b
    out.append(t[pos:])
    return "".join(out)


def _region(locale: str) -> str | None:
    parts = locale.replace("_", "-").split("-")
    return parts[1].upper() if len(parts) > 1 and len(parts[1]) == 2 else None


def is_relay_alias(addr: str, ctx: PolicyContext) -> bool:
    return addr.lower().rsplit("@", 1)[-1] == ctx.relay_domain.lower()


class TextScanner:
    """Stateless scanner bound to one policy; safe to share between threads."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.lex = policy.lexicon
        self.allowed_numbers = {regex.sub(r"\D", "", n) for n in policy.file.phones.allowed_numbers}
        self.digit_words = DigitWords(policy.lexicon.digits)
        self.spelled = SpelledEmail(policy)

    # -- public -----------------------------------------------------------------------
    def scan(self, text: str, ctx: PolicyContext, *, emoji: bool | None = None) -> list[Hit]:
        """All token hits in ``text`` (original offsets), overlaps resolved left to right."""
        if not text:
            return []
        nt = self.digit_words(normalize(text))
        hits: list[Hit] = []
        hits += self._emails(nt, text, ctx)
        hits += self._links(nt, text, ctx)
        hits += self._handles(nt, text)
        hits += self._phones(nt, text, ctx)
        hits += self._opt_out(nt, text)
        if emoji if emoji is not None else ctx.direction == "seller-to-buyer":
            hits += self._emoji(text)
        return _resolve(hits)

    # -- detectors ----------------------------------------------------------------------
    def _emails(self, nt: NormText, text: str, ctx: PolicyContext) -> list[Hit]:
        out = []
        spans = [(m.start(), m.end()) for m in in_tokens(EMAIL_RE, _AT_TOKEN, nt.text)]
        spans += self.spelled.find(nt.text)
        for s, e in spans:
            addr = nt.text[s:e]
            if nt.text[max(0, s - 4):s].lower() == "cid:":
                continue
            if "@" in addr and is_relay_alias(addr, ctx):
                continue
            a, b = nt.span(s, e)
            out.append(Hit("email_address", "contact.email", a, b, text[a:b]))
        return out

    def _links(self, nt: NormText, text: str, ctx: PolicyContext) -> list[Hit]:
        out = []
        prev: tuple[int, str] | None = None   # (end, url) of the previous link
        for m in in_tokens(links.URL_RE, _DOT_TOKEN, nt.text):
            url = links.clean_url(m.group())
            if not links.bare_domain_ok(url):
                continue
            a, b = nt.span(m.start(), m.start() + len(url))
            low = url.lower()
            if low.startswith("mailto:"):
                addr = url[7:].split("?", 1)[0]
                if addr and not is_relay_alias(addr, ctx):
                    out.append(Hit("email_address", "contact.email", a, b, text[a:b]))
                continue
            if low.startswith(("tel:", "callto:", "sms:")):
                out.append(Hit("phone_number", "contact.phone", a, b, text[a:b]))
                continue
            line_start = nt.text.rfind("\n", 0, m.start()) + 1
            near = nt.text[max(line_start, m.start() - 100):m.start()]
            v = links.classify(url, ctx, self.policy, near)
            out.append(Hit(v.kind, v.rule, a, b, text[a:b], v.allowed))
            # a text rendering of an HTML link, "label <target>": the label shows a URL
            if prev and nt.text[prev[0]:m.start()].strip() == "<" and links.mismatch(prev[1], url):
                out.append(Hit("deceptive_link", "deceptive_link", a, b, text[a:b]))
            prev = (m.start() + len(url), url)
        return out

    def _handles(self, nt: NormText, text: str) -> list[Hit]:
        out = []
        for m in in_tokens(HANDLE_RE, _AT_TOKEN, nt.text):
            if not regex.search(r"[A-Za-z]", m.group(1)):
                continue
            before = nt.text[max(0, m.start() - 50):m.start()]
            kind, rule = ("messaging_app_link", "link.messaging") if self.lex.search(
                "messaging_cue", before) else ("social_handle", "link.social")
            a, b = nt.span(m.start(), m.end())
            out.append(Hit(kind, rule, a, b, text[a:b]))
        for key, kind, rule in (("messaging_cue", "messaging_app_link", "link.messaging"),
                                ("social_cue", "social_handle", "link.social")):
            for cue in self.lex.finditer(key, nt.text):
                window = nt.text[cue.end():cue.end() + 40]
                uc = self.lex.search("username_cue", window)
                if uc:
                    tm = USER_TOKEN.match(window, uc.end())
                else:
                    tm = COLON_TOKEN.match(window)
                if not tm:
                    continue
                tok = tm.group(1)
                if not (tok.startswith("@") or regex.search(r"[\d._\-]", tok)):
                    continue
                if not regex.search(r"[A-Za-z]", tok):
                    continue
                s = cue.end() + tm.start(1)
                a, b = nt.span(s, s + len(tok))
                out.append(Hit(kind, rule, a, b, text[a:b]))
        return out

    def _phones(self, nt: NormText, text: str, ctx: PolicyContext) -> list[Hit]:
        t = _masked(nt.text)
        wanted = [_region(ctx.buyer_locale), *self.policy.file.phones.extra_regions]
        regions = list(dict.fromkeys(r for r in wanted if r))
        joins: list[int] = []
        if "\n" in t:     # a number broken over two lines or table cells: "612 34\n56 78"
            joins = [m.start() for m in _LINE_JOIN.finditer(t)]
            if joins:
                t = _LINE_JOIN.sub(lambda m: "-" * len(m.group()), t)
        out = []
        for m in PHONE_CAND.finditer(t):
            cand = m.group()
            digits = "".join(c for c in cand if c.isdigit())
            if not 7 <= len(digits) <= 15:
                continue
            k = bisect.bisect_left(joins, m.start())
            if k < len(joins) and joins[k] < m.end() and not (
                    _dialled(cand.split("-")[0]) or self.lex.search(
                        "phone_cue", t[max(0, m.start() - 40):m.start()])):
                continue   # joined across a line only when written or introduced as a phone
            validity = _valid(cand, tuple(regions))
            if validity == 0:
                continue
            label = self._labelled_id(t, m.start())
            # after an order/parcel label a number written like a phone is still a phone;
            # after a tax, VAT, serial or licence label it is that id, whatever it looks like
            if label == 2 or (label == 1 and not _dialled(cand)):
                continue
            if validity == 1 and not self._phone_shaped(t, m.start(), cand):
                continue
            a, b = nt.span(m.start(), m.end())
            allowed = digits in self.allowed_numbers or self._service_line(t, m.start())
            out.append(Hit("phone_number", "contact.phone", a, b, text[a:b], allowed))
            before = t[max(0, m.start() - 40):m.start()]
            if not allowed and self.lex.search("messaging_cue", before):
                out.append(Hit("messaging_app_link", "link.messaging", a, b, text[a:b]))
        return out

    def _opt_out(self, nt: NormText, text: str) -> list[Hit]:
        """Unsubscribe footers: the whole sentence goes, with or without a link in it."""
        out = []
        t = nt.text
        for m in self.lex.finditer("opt_out", t):
            s = max(t.rfind("\n", 0, m.start()) + 1,
                    max((t.rfind(p, 0, m.start()) + 2 for p in (". ", "! ", "? ")), default=0))
            e = t.find("\n", m.end())
            e = len(t) if e == -1 else e
            for p in (". ", "! ", "? "):
                k = t.find(p, m.end(), e)
                if k != -1:
                    e = k + 1
            a, b = nt.span(s, e)
            out.append(Hit("opt_out_link", "link.opt_out", a, b, text[a:b], sentence=True))
        return out

    def _emoji(self, text: str) -> list[Hit]:
        out = []
        for m in EMOJI_RE.finditer(text):
            g = m.group()
            if g[0] in "©®™" or not _EMOJI_PRES.search(g):
                continue
            out.append(Hit("emoji", "text.emoji", m.start(), m.end(), g))
        return out

    # -- helpers ------------------------------------------------------------------------
    def _phone_shaped(self, t: str, start: int, cand: str) -> bool:
        """A merely possible number counts when written or introduced like a phone."""
        if self.lex.search("phone_cue", t[max(0, start - 40):start]):
            return True
        groups = regex.split(r"[\s\-./()]+", cand.strip("() "))
        lead = cand.lstrip()
        return lead.startswith("+") or bool(regex.match(r"\(\s?\+?\d{2,5}\s?\)", lead)) or (
            lead.startswith("0") and len(groups) >= 3)

    def _labelled_id(self, t: str, start: int) -> int:
        """2: right after a tax/serial label (``NIP``, ``P.IVA``); 1: after another id label
        (``Sendungsnummer``, ``order``); 0: no label, or a phone cue outweighs it."""
        window = t[max(0, start - 30):start]
        best = 0
        for key, level in (("strong_id_label", 2), ("id_label", 1)):
            labels = self.lex.finditer(key, window)
            if labels and len(window[labels[-1].end():].strip(" :：#.-")) <= 18:
                best = max(best, level)
        if best and self.lex.search("phone_cue", t[max(0, start - 40):start]):
            return 0   # "call me about order: ..." is a phone number
        return best

    def _service_line(self, t: str, start: int) -> bool:
        """Presented as a carrier, manufacturer or warranty line in the same sentence."""
        bound = max(t.rfind(". ", 0, start), t.rfind("\n", 0, start), t.rfind("。", 0, start))
        sentence = t[max(bound + 1, start - 120):start]
        cues = self.lex.finditer("service_cue", sentence)
        if not cues:
            return False
        # "our hotline" or "my cell" is the writer's own line, not a third party's
        around = sentence[max(0, cues[-1].start() - 25):cues[-1].start()] + " | " + sentence[
            cues[-1].end():]
        return not self.lex.search("personal_cue", around)


@functools.lru_cache(maxsize=4096)
def _valid(cand: str, regions: tuple[str, ...]) -> int:
    """2: a valid number; 1: only a possible one (fiction ranges); 0: neither."""
    s = cand.strip()
    if s.startswith("00"):
        s = "+" + s[2:]
    best = 0
    digits = "".join(c for c in s if c.isdigit())
    for region in ((None,) if s.startswith("+") else regions):
        try:
            num = phonenumbers.parse(s, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(num):
            if region is None or _full_national(region, digits):
                return 2
            best = 1
        elif phonenumbers.is_possible_number(num):
            best = 1
    return best


def _full_national(region: str, digits: str) -> bool:
    """Written as a full national number: with the trunk prefix where the region has one
    (``0`` in DE/FR/GB/NL/JP ...), so ``28/47-622`` is not a German number without it."""
    meta = phonenumbers.PhoneMetadata.metadata_for_region(region)
    prefix = meta.national_prefix if meta is not None else None
    return not prefix or prefix == "1" or digits.startswith(prefix)


def _dialled(cand: str) -> bool:
    """Written the way phone numbers are: international, or a trunk 0 and digit groups."""
    lead = cand.lstrip("( ")
    groups = [g for g in regex.split(r"[\s\-./()]+", cand) if g]
    return lead.startswith(("+", "00")) or (lead.startswith("0") and len(groups) >= 2)


def _alt(words: tuple[str, ...]) -> str:
    return "|".join(regex.escape(w) for w in sorted(words, key=len, reverse=True)) or "(?!)"


class SpelledEmail:
    """Addresses with a spelled-out ``@`` or ``.`` in any lexicon language.

    ``jane.doe [at] example [dot] org``, ``john at gmail.com``, ``maria arroba gmail punto
    com``, ``taro アットマーク gmail ドット com``. The domain must end in a real public
    suffix. A bare word that is also prose ("look at amazon.de") needs more: a spelled
    "dot", a mailbox-like local part, or a local part that is not a prose word before "at"
    and a domain that is not one of the order's allowed domains.
    """

    _OPEN, _CLOSE = r"[\[\(\{<（【]", r"[\]\)\}>）】]"

    def __init__(self, policy: Policy) -> None:
        w = policy.lexicon.words
        strong, weak = w.get("email_at", ()), w.get("email_at_weak", ())
        brk, dots = w.get("email_at_bracketed", ()), w.get("email_dot", ())
        latin = [x for x in strong if x.isascii() or regex.match(r"\p{Latin}", x)]
        other = [x for x in strong if x not in latin]
        dlatin = [x for x in dots if x.isascii() or regex.match(r"\p{Latin}", x)]
        dother = [x for x in dots if x not in dlatin]
        o, c = self._OPEN, self._CLOSE
        at = (rf"(?:\s*{o}\s*(?:{_alt(strong + weak + brk)}|@)\s*{c}\s*"
              rf"|\s+(?:{_alt(tuple(latin))})\s+|\s*(?:{_alt(tuple(other))})\s*"
              rf"|\s+(?P<weak>{_alt(weak)})\s+|\s+@\s*|\s*@\s+)")
        dot = (rf"(?:\s*{o}\s*(?:{_alt(dots)}|\.)\s*{c}\s*"
               rf"|\s+(?:{_alt(tuple(dlatin))})\s+|\s*(?:{_alt(tuple(dother))})\s*|\s+\.\s+|\.)")
        word = r"[A-Za-z0-9](?:[A-Za-z0-9_%+\-]|\.(?=[A-Za-z0-9]))*"
        label = r"[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?"
        self.rx = regex.compile(
            rf"(?<![A-Za-z0-9._%+\-])(?P<local>{word}(?:{dot}{word})*){at}"
            rf"(?P<domain>{label}(?:{dot}{label})*{dot}[A-Za-z]{{2,24}})(?![A-Za-z0-9])",
            regex.IGNORECASE)
        self.dot = regex.compile(dot, regex.IGNORECASE)
        # cheap test after an anchor: is a domain next? (most "at"s are prose)
        self.domain_next = regex.compile(
            rf"[\s\]\)\}}>）】]*{label}(?:{dot}{label})*{dot}[A-Za-z]{{2,24}}(?![A-Za-z0-9])",
            regex.IGNORECASE)
        self.spelled_dot = regex.compile(
            rf"{o}|\s(?:{_alt(tuple(dlatin))})\s|{_alt(tuple(dother))}", regex.IGNORECASE)
        # where an "@" may be spelled out: the full pattern only runs around these
        self.anchor = regex.compile(
            rf"\s@|@\s|{o}\s*(?:{_alt(strong + weak + brk)}|@)\s*{c}"
            rf"|(?<![A-Za-z])(?:{_alt(strong + weak)})(?![A-Za-z])|{_alt(tuple(other))}",
            regex.IGNORECASE)
        self.prose = frozenset(x.lower() for x in w.get("at_prose", ()))
        d = policy.file.domains
        self.allowed = d.marketplace + d.carriers + d.allow

    def find(self, text: str) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        for a in self.anchor.finditer(text):
            if out and a.start() < out[-1][1]:
                continue
            if not self.domain_next.match(text, a.end()):
                continue
            lo = max(0, a.start() - 120, out[-1][1] if out else 0)
            # overlapped: a failed guess ("line at harriet dot wells") must not use up the
            # text of the real address that shares its words ("harriet dot wells at gmail…")
            found = self.rx.finditer(text, lo, min(len(text), a.end() + 160), overlapped=True)
            m = next((m for m in found if m.start() <= a.start() and m.end() >= a.end()), None)
            if m is None:
                continue
            if "@" in m.group() and not regex.search(r"\s|" + self._OPEN, m.group()):
                continue    # a plain address: EMAIL_RE's
            domain = self.dot.sub(".", m.group("domain")).lower()
            if links.registrable(domain) is None:
                continue
            if m.group("weak") and not self._weak_ok(m, domain):
                continue
            out.append((m.start(), m.end()))
        return out

    def _weak_ok(self, m: regex.Match[str], domain: str) -> bool:
        local = m.group("local")
        if self.spelled_dot.search(m.group()) or regex.search(r"[._\d+\-]", local):
            return True
        return local.lower() not in self.prose and not links.on(domain, self.allowed)


_PRIO = {"opt_out_link": 0, "email_address": 1, "messaging_app_link": 2, "social_handle": 3,
         "deceptive_link": 4, "external_link": 5, "phone_number": 6, "emoji": 7}


def _resolve(hits: list[Hit]) -> list[Hit]:
    """Every hit is reported; overlapping ones are cut once, as their union.

    Hits inside an allowed link (a number in a carrier's tracking URL) are not hits.
    """
    if len(hits) < 2:
        return hits
    link_kinds = ("external_link", "messaging_app_link", "social_handle", "opt_out_link",
                  "deceptive_link")
    links = sorted((h for h in hits if h.kind in link_kinds and not h.sentence),
                   key=lambda h: h.start)
    if links:  # a number or handle inside a link is part of that link, not a finding of its own
        link_ids = {id(h) for h in links}
        starts = [o.start for o in links]
        best: list[Hit] = []   # prefix: the link reaching furthest among those started so far
        for o in links:
            best.append(o if not best or o.end > best[-1].end else best[-1])

        def inside(h: Hit) -> bool:
            k = bisect.bisect_right(starts, h.start)
            if k == 0 or best[k - 1].end < h.end:
                return False
            o = best[k - 1]
            if (o.end - o.start) > (h.end - h.start):
                return True
            return any(x.start <= h.start and h.end <= x.end
                       and (x.end - x.start) > (h.end - h.start) for x in links[:k])

        hits = [h for h in hits if id(h) in link_ids or not inside(h)]
    allowed = [h for h in hits if h.allowed]
    live = sorted((h for h in hits if not h.allowed), key=lambda h: (h.start, -h.end))
    out: list[Hit] = [dataclasses.replace(h, cut=False) for h in allowed]
    cluster: list[Hit] = []
    end = -1

    def flush() -> None:
        if not cluster:
            return
        best = min(cluster, key=lambda h: (_PRIO.get(h.kind, 9), h.start))
        lo, hi = min(h.start for h in cluster), max(h.end for h in cluster)
        for h in cluster:
            if h is best:
                out.append(dataclasses.replace(h, start=lo, end=hi, cut=True))
            else:
                out.append(dataclasses.replace(h, cut=False))

    for h in live:
        if h.start >= end:
            flush()
            cluster = []
        cluster.append(h)
        end = max(end, h.end)
    flush()
    return sorted(out, key=lambda h: h.start)
