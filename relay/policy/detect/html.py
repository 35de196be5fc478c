"""Judge and clean one HTML part with a real parser (selectolax/lexbor), output via nh3.

Order matters: hidden content and remote resources are found on the parsed tree *before*
sanitising; then text is scanned as the reader would see it (adjacent inline text nodes
joined, so a phone number split across ``<span>``s is still one number), and each hit is
cut from the text nodes it spans. Attributes that carry text (alt, title) are scanned too.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

import nh3
import regex
from selectolax.lexbor import LexborHTMLParser, LexborNode

from relay.policy import links
from relay.policy.detect import css
from relay.policy.detect.tokens import Hit, TextScanner, is_relay_alias
from relay.policy.markers import marker
from relay.policy.model import PolicyContext

_INLINE = {"a", "span", "b", "i", "u", "em", "strong", "font", "small", "big", "sup", "sub",
           "abbr", "code", "mark", "s", "strike", "o:p", "wbr", "label", "bdi", "bdo", "q",
           "cite", "tt", "var", "ins", "del", "time", "data"}
_SKIP_TEXT = {"style", "script", "head", "title", "noscript", "template", "xml"}
_DROP = {"script", "iframe", "object", "embed", "form", "frame", "frameset", "applet",
         "base", "link", "meta"}
_MEDIA = {"video", "audio", "source", "track"}
_QUOTE_CLASSES = {"gmail_quote", "yahoo_quoted", "moz-cite-prefix", "protonmail_quote",
                  "gmail_attr", "ms-outlook-mobile-reference-message"}
_QUOTE_IDS = {"divRplyFwdMsg", "appendonsend", "mail-editor-reference-message-container"}
_TEXT_ATTRS = ("alt", "title", "aria-label")
_TAGS = {"a", "abbr", "b", "blockquote", "br", "caption", "center", "cite", "code", "col",
         "colgroup", "dd", "del", "div", "dl", "dt", "em", "font", "h1", "h2", "h3", "h4", "h5",
         "h6", "hr", "i", "img", "ins", "li", "ol", "p", "pre", "q", "s", "small", "span",
         "strike", "strong", "sub", "sup", "table", "tbody", "td", "tfoot", "th", "thead",
         "tr", "u", "ul"}
_ATTRS = {"*": {"style", "class", "dir", "lang", "align", "valign", "width", "height",
                "title", "bgcolor", "color", "border", "cellpadding", "cellspacing", "colspan",
                "rowspan"},
          "a": {"href"}, "img": {"src", "alt"}}


@dataclass
class HtmlHit:
    kind: str
    rule: str
    excerpt: str
    allowed: bool = False


@dataclass
class HtmlResult:
    hits: list[HtmlHit] = field(default_factory=list)
    html: str | None = None        # cleaned HTML when something was removed
    text: str = ""                 # visible text, for message-level rules


_TAG_RE = regex.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9:]*)[^>]*?(/?)>")
_VOID = {"br", "img", "hr", "meta", "link", "input", "col", "area", "base", "wbr", "source",
         "p", "li", "td", "tr", "th", "option", "dt", "dd", "tbody", "thead", "tfoot",
         "colgroup", "o:p", "param", "track", "embed"}
MAX_HTML_DEPTH = 1000


def nesting_depth(source: str, limit: int = MAX_HTML_DEPTH) -> int:
    """Approximate element depth from the tags alone (parsers go quadratic when deep)."""
    depth = peak = 0
    for m in _TAG_RE.finditer(source):
        name = m.group(2).lower()
        if name in _VOID or m.group(3):
            continue
        depth = max(0, depth - 1) if m.group(1) else depth + 1
        if depth > peak:
            peak = depth
            if peak > limit:
                break
    return peak


def _shows_token(label: str) -> bool:
    """Does a link label show the target itself (so the text scan redacts it anyway)?"""
    return bool(regex.search(r"@|\d{3}|://|www\.|\.[a-z]{2,}/", label, flags=regex.I))


def _reading_text(node: LexborNode) -> str:
    """Text of a subtree as the visible text is built: inline elements joined, blocks on
    their own lines (so ``kate<b>@</b>x.ai`` is one token and two cells are not)."""
    out: list[str] = []
    for n in node.traverse(include_text=True):
        tag = n.tag or ""  # selectolax types it optional
        if tag == "-text":
            out.append(n.text_content or "")
        elif not tag.startswith("-") and tag not in _INLINE:
            out.append("\n")
    return "".join(out)


def _remote(url: str) -> bool:
    return url.strip().lower().startswith(("http:", "https:", "//"))


@dataclass
class _Walk:
    """What one walk over a document has seen so far: which elements hide or quote their
    content, their colours (white-on-white is hidden), the text as a reader sees it, and
    where each text node sits in that text (so a hit is cut from the nodes it spans)."""

    res: HtmlResult = field(default_factory=HtmlResult)
    changed: bool = False
    hid_cls: set[str] = field(default_factory=set)  # selectors a <style> sheet hides
    hid_ids: set[str] = field(default_factory=set)
    hid_tags: set[str] = field(default_factory=set)
    hidden: dict[int, bool] = field(default_factory=dict)
    fg: dict[int, str | None] = field(default_factory=dict)
    bg: dict[int, str | None] = field(default_factory=dict)
    remove: list[LexborNode] = field(default_factory=list)
    segs: list[tuple[LexborNode, int, int]] = field(default_factory=list)
    buf: list[str] = field(default_factory=list)
    own: list[str] = field(default_factory=list)  # text outside quoted earlier messages
    quoted: set[int] = field(default_factory=set)
    skip: set[int] = field(default_factory=set)  # no text of theirs is read (script, head)
    pos: int = 0
    brk: bool = False

    def hit(self, kind: str, rule: str, excerpt: str, allowed: bool = False) -> None:
        self.res.hits.append(HtmlHit(kind, rule, excerpt, allowed))

    def text(self, node: LexborNode, pid: int) -> None:
        if pid in self.skip or self.hidden.get(pid):
            return
        txt = node.text_content or ""
        if self.brk and self.buf:
            self.buf.append("\n")
            self.own.append("\n")
            self.pos += 1
        self.brk = False
        self.buf.append(txt)
        if pid not in self.quoted:
            self.own.append(txt)
        self.segs.append((node, self.pos, self.pos + len(txt)))
        self.pos += len(txt)


class HtmlJudge:
    def __init__(self, scanner: TextScanner) -> None:
        self.scanner = scanner
        self.policy = scanner.policy

    def judge(self, source: str, ctx: PolicyContext) -> HtmlResult:
        """One walk over the parsed tree finds hidden content and remote resources and
        gathers the visible text; the text is then scanned as a whole and each hit cut."""
        tree = LexborHTMLParser(source)
        walk = _Walk()
        self._sheets(tree, walk)
        for node in tree.root.traverse(include_text=True) if tree.root else []:
            tag = node.tag or ""  # selectolax types it optional
            parent = node.parent
            pid = parent.mem_id if parent is not None else 0
            if tag == "-text":
                walk.text(node, pid)
            elif tag == "-comment":
                walk.changed = True
                walk.remove.append(node)
            elif not tag.startswith("-"):
                self._element(node, tag, pid, ctx, walk)
        return self._finish(tree, walk, ctx)

    def _sheets(self, tree: LexborHTMLParser, walk: _Walk) -> None:
        """<style> sheets: the selectors they hide, and the remote URLs they load."""
        for sheet in (n.text() for n in tree.css("style")):
            c, i, t = css.hidden_selectors(sheet)
            walk.hid_cls |= c
            walk.hid_ids |= i
            walk.hid_tags |= t
            for url, printing in css.remote_urls(sheet):
                kind = "tracking_pixel" if printing or links.is_tracky(url) else "remote_image"
                walk.hit(kind, f"html.{kind}", url)
                walk.changed = True

    def _element(
        self, node: LexborNode, tag: str, pid: int, ctx: PolicyContext, walk: _Walk
    ) -> None:
        nid = node.mem_id
        if pid in walk.skip or tag in _SKIP_TEXT:
            walk.skip.add(nid)
        attrs = node.attributes
        decl = css.declarations(attrs.get("style") or "")
        is_hidden = self._hides(tag, pid, nid, attrs, decl, walk)
        if tag not in _INLINE:
            walk.brk = True
        self._remote_attributes(node, tag, attrs, decl, is_hidden or bool(walk.hidden.get(pid)),
                                walk)  # fmt: skip
        self._remote_style(node, attrs, is_hidden, walk)
        if tag in _DROP or tag in _MEDIA:
            self._drop(node, tag, attrs, walk)
            walk.skip.add(nid)
            return
        if tag == "a" and (href := attrs.get("href")):
            walk.changed |= self._anchor(node, href, ctx, walk.res)
        for att in _TEXT_ATTRS:
            val = attrs.get(att)
            if val:
                new = self._redact_string(val, ctx, walk.res, "attr")
                if new != val:
                    node.attrs[att] = new
                    walk.changed = True
        if is_hidden and not walk.hidden.get(pid):
            self._hidden(node, ctx, walk)
        walk.hidden[nid] = is_hidden or bool(walk.hidden.get(pid))

    def _hides(
        self, tag: str, pid: int, nid: int, attrs: dict[str, str | None],
        decl: dict[str, str], walk: _Walk,
    ) -> bool:  # fmt: skip
        """Whether this element hides its content (and note whether it quotes an earlier
        message: that text is visible but not the sender's own)."""
        p_fg, p_bg = walk.fg.get(pid), walk.bg.get(pid)
        my_fg = css.colour(decl.get("color") or attrs.get("color")) or p_fg
        my_bg = css.background_of(decl) or css.colour(attrs.get("bgcolor")) or p_bg
        walk.fg[nid], walk.bg[nid] = my_fg, my_bg
        classes = {c.lower() for c in (attrs.get("class") or "").split()}
        if pid in walk.quoted or tag == "blockquote" or classes & _QUOTE_CLASSES or (
                attrs.get("id") or "") in _QUOTE_IDS:
            walk.quoted.add(nid)
        return (
            css.hides(decl) or "hidden" in attrs
            or bool(classes & walk.hid_cls) or (attrs.get("id") or "").lower() in walk.hid_ids
            or tag in walk.hid_tags
            or (my_fg is not None and decl.get("color") is not None
                and my_fg == (my_bg or "#ffffff"))
        )  # fmt: skip

    def _remote_attributes(
        self, node: LexborNode, tag: str, attrs: dict[str, str | None],
        decl: dict[str, str], hidden: bool, walk: _Walk,
    ) -> None:  # fmt: skip
        """Images and other loads named in attributes: beacons or remote images, cut."""
        for att in ("src", "background", "srcset", "poster", "data-src"):
            val = attrs.get(att)
            if not val or not _remote(val.split(",")[0].split()[0] if val.split() else val):
                continue
            if tag in ("img", "image", "input") or att != "src":
                kind = self._image_kind(val, attrs, decl, hidden)
                walk.hit(kind, f"html.{kind}", val)
                walk.changed = True
                if tag in ("img", "image", "input"):
                    walk.remove.append(node)
                else:
                    del node.attrs[att]

    def _remote_style(
        self, node: LexborNode, attrs: dict[str, str | None], hidden: bool, walk: _Walk
    ) -> None:
        style = attrs.get("style") or ""
        if "url(" in style.lower() and css.remote_urls(style):
            for url, _ in css.remote_urls(style):
                kind = "tracking_pixel" if links.is_tracky(url) or hidden else "remote_image"
                walk.hit(kind, f"html.{kind}", url)
            node.attrs["style"] = css.strip_remote(style)
            walk.changed = True

    def _drop(self, node: LexborNode, tag: str, attrs: dict[str, str | None], walk: _Walk) -> None:
        """Scripts, frames, forms, media: removed; what they load on open is a beacon or
        an image."""
        for att in ("src", "href", "data"):
            val = attrs.get(att) or ""
            if _remote(val) and tag not in ("base", "form", "meta"):
                tracky = tag not in _MEDIA or links.is_tracky(val)
                kind = "tracking_pixel" if tracky else "remote_image"
                walk.hit(kind, f"html.{kind}", val)
        walk.remove.append(node)
        walk.changed = True

    def _hidden(self, node: LexborNode, ctx: PolicyContext, walk: _Walk) -> None:
        text = node.text(deep=True, separator=" ").strip()
        if text:
            walk.hit("hidden_content", "html.hidden", text[:80])
            # what it hides is judged too: an address in it is an address (and still goes
            # when an operator allows hidden text itself)
            for h in self.scanner.scan(_reading_text(node), ctx):
                walk.hit(h.kind, h.rule, h.excerpt, h.allowed)
        walk.remove.append(node)
        walk.changed = True

    def _finish(self, tree: LexborHTMLParser, walk: _Walk, ctx: PolicyContext) -> HtmlResult:
        """Scan the visible text as one, cut each hit from its nodes, then sanitise."""
        res = walk.res
        res.text = "".join(walk.own)
        scanned = self.scanner.scan("".join(walk.buf), ctx)
        hits = [h for h in scanned if h.cut and not h.allowed]
        for h in scanned:
            walk.hit(h.kind, h.rule, h.excerpt, h.allowed)
        if hits:
            walk.changed = True
            self._cut(walk.segs, hits)
        for node in walk.remove:
            try:
                node.decompose()
            except Exception:
                pass
        if walk.changed:
            res.html = sanitise(tree.html or "")
        return res

    # -- helpers ------------------------------------------------------------------------
    def _image_kind(
        self, url: str, attrs: dict[str, str | None], decl: dict[str, str], hidden: bool
    ) -> str:
        w = attrs.get("width") or decl.get("width", "")
        h = attrs.get("height") or decl.get("height", "")
        tiny = any(regex.fullmatch(r"\s*[01](?:px)?\s*", v or "") for v in (w, h))
        return "tracking_pixel" if tiny or hidden or links.is_tracky(url) else "remote_image"

    def _anchor(self, node: LexborNode, href: str, ctx: PolicyContext, res: HtmlResult) -> bool:
        low = href.strip().lower()
        label = node.text(deep=True, separator=" ").strip()
        if low.startswith(("mailto:", "tel:", "callto:", "sms:")):
            target = href.strip().split(":", 1)[1].split("?", 1)[0]
            if low.startswith("mailto:"):
                if not target or is_relay_alias(target, ctx):
                    return False
                kind, rule, allowed = "email_address", "contact.email", False
            else:
                kind, rule = "phone_number", "contact.phone"
                allowed = regex.sub(r"\D", "", target) in self.scanner.allowed_numbers
            res.hits.append(HtmlHit(kind, rule, href.strip(), allowed))
            if allowed:
                return False
            del node.attrs["href"]
            if label and not _shows_token(label):
                node.insert_after(" " + marker(kind))
            return True
        if not regex.match(r"(?:https?:)?//|www\.", low):
            return False
        v = links.classify(href.strip(), ctx, self.policy, label)
        shown = links.looks_like_url(label)
        if shown and v.kind != "deceptive_link" and links.mismatch(shown, href.strip()):
            res.hits.append(HtmlHit("deceptive_link", "deceptive_link", href.strip()))
            v = links.LinkVerdict(v.kind, False, v.rule)
        res.hits.append(HtmlHit(v.kind, v.rule, href.strip(), v.allowed))
        if v.allowed:
            return False
        del node.attrs["href"]
        if label and not _shows_token(label):
            node.insert_after(" " + marker(v.kind))
        return True

    def _redact_string(self, s: str, ctx: PolicyContext, res: HtmlResult, _: str) -> str:
        hits = self.scanner.scan(s, ctx)
        out, last = [], 0
        for h in hits:
            res.hits.append(HtmlHit(h.kind, h.rule, h.excerpt, h.allowed))
            if h.allowed or not h.cut:
                continue
            out.append(s[last:h.start])
            out.append(marker(h.kind))
            last = h.end
        out.append(s[last:])
        return "".join(out)

    @staticmethod
    def _cut(segs: list[tuple[LexborNode, int, int]], hits: list[Hit]) -> None:
        """Replace each hit's span across the text nodes it touches with one marker."""
        edits: dict[int, list[tuple[int, int, str]]] = {}
        ends = [b for _, _, b in segs]
        for h in hits:
            first = True
            idx = bisect.bisect_right(ends, h.start)
            while idx < len(segs) and segs[idx][1] < h.end:
                _, a, b = segs[idx]
                if b > h.start:
                    lo, hi = max(a, h.start) - a, min(b, h.end) - a
                    edits.setdefault(idx, []).append((lo, hi, marker(h.kind) if first else ""))
                    first = False
                idx += 1
        for idx, spans in edits.items():
            node, a, b = segs[idx]
            txt = node.text_content or ""
            for lo, hi, rep in sorted(spans, reverse=True):
                txt = txt[:lo] + rep + txt[hi:]
            node.replace_with(txt)


def sanitise(html: str) -> str:
    """nh3 with a mail-friendly allowlist; remote images are already gone by now."""
    return "<html><body>" + nh3.clean(
        html, tags=_TAGS, attributes=_ATTRS, url_schemes={"https", "cid"},
                     strip_comments=True, link_rel=None,
        clean_content_tags={"script", "style", "head", "title", "noscript", "template", "xml"},
    ) + "</body></html>"
