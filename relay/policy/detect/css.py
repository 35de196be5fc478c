"""Just enough CSS to tell hidden text and remote resources (no cascade engine).

Inline ``style`` attributes decide most cases; top-level ``<style>`` rules with simple
selectors (``.preheader``, ``#x``, ``span``) add class-based hiding. ``@media`` blocks are
ignored for hiding (a mobile-only rule does not hide text from everyone).
"""

from __future__ import annotations

import functools

import regex

URL_IN_CSS = regex.compile(r"url\(\s*(['\"]?)([^'\")]+)\1\s*\)", regex.IGNORECASE)
IMPORT_RE = regex.compile(r"@import\s+(?:url\()?\s*['\"]?([^'\");\s]+)", regex.IGNORECASE)
_MEDIA = regex.compile(r"@media[^{]*\{(?:[^{}]*\{[^{}]*\})*[^{}]*\}", regex.IGNORECASE)
_RULE = regex.compile(r"([^{}@]+)\{([^{}]*)\}")
_WHITE = {"#fff", "#ffffff", "white", "rgb(255,255,255)", "#fefefe", "#fdfdfd"}


_ZERO = regex.compile(r"0*\.?0*(?:px|pt|em|rem|%|)")
_HAIRLINE = regex.compile(r"(?:0?\.\d+|1)px")
_NO_OPACITY = regex.compile(r"0*\.?0*")
_HEX3 = regex.compile(r"#[0-9a-f]{3}")
_RGB = regex.compile(r"rgba?\((\d+),(\d+),(\d+)(?:,[\d.]+)?\)")
_BG_COLOUR = regex.compile(r"#[0-9a-f]{3,6}\b|rgba?\([^)]*\)|\bwhite\b|\bblack\b")
_EMPTY: dict[str, str] = {}


def declarations(style: str) -> dict[str, str]:
    """Property -> value of a declaration block (lower case, without ``!important``).

    The result is shared between equal style strings (Word HTML repeats a handful of
    them thousands of times): callers must not change it."""
    if not style:
        return _EMPTY
    return _declarations(style)


@functools.lru_cache(maxsize=4096)
def _declarations(style: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for decl in style.split(";"):
        k, sep, v = decl.partition(":")
        if sep:
            out[k.strip().lower()] = v.replace("!important", "").strip().lower()
    return out


def _zero(v: str) -> bool:
    v = v.replace(" ", "")
    return bool(_ZERO.fullmatch(v)) or bool(_HAIRLINE.fullmatch(v))


def hides(d: dict[str, str]) -> bool:
    """Does this declaration block hide its element's text from the reader?"""
    if d.get("display", "").startswith("none") or d.get("visibility") in ("hidden", "collapse"):
        return True
    if d.get("mso-hide") == "all":
        return True
    if "opacity" in d and _NO_OPACITY.fullmatch(d["opacity"]):
        return True
    if "font-size" in d and _zero(d["font-size"]):
        return True
    if d.get("color") == "transparent":
        return True
    clipped = d.get("overflow") == "hidden"
    sizes = ("max-height", "height", "max-width", "width")
    if clipped and any(k in d and _zero(d[k]) for k in sizes):
        return True
    return False


def colour(v: str | None) -> str | None:
    if not v:
        return None
    return _colour(v)


@functools.lru_cache(maxsize=4096)
def _colour(v: str) -> str | None:
    v = v.replace(" ", "").lower()
    if _HEX3.fullmatch(v):
        v = "#" + "".join(c * 2 for c in v[1:])
    if v in _WHITE:
        return "#ffffff"
    m = _RGB.fullmatch(v)
    if m:
        return "#" + "".join(f"{int(x):02x}" for x in m.groups())
    return v


def background_of(d: dict[str, str]) -> str | None:
    if "background-color" in d:
        return colour(d["background-color"])
    bg = d.get("background")
    if bg:
        m = _BG_COLOUR.search(bg)
        return colour(m.group()) if m else None
    return None


def hidden_selectors(stylesheet: str) -> tuple[set[str], set[str], set[str]]:
    """(classes, ids, tags) that top-level rules hide."""
    classes: set[str] = set()
    ids: set[str] = set()
    tags: set[str] = set()
    sheet = _MEDIA.sub("", regex.sub(r"/\*.*?\*/", "", stylesheet, flags=regex.S))
    for m in _RULE.finditer(sheet):
        if not hides(declarations(m.group(2))):
            continue
        for sel in m.group(1).split(","):
            sel = sel.strip()
            if regex.fullmatch(r"[a-z0-9]*\.[\w\-]+", sel, flags=regex.I):
                classes.add(sel.split(".", 1)[1].lower())
            elif regex.fullmatch(r"[a-z0-9]*#[\w\-]+", sel, flags=regex.I):
                ids.add(sel.split("#", 1)[1].lower())
            elif regex.fullmatch(r"[a-z][a-z0-9]*", sel, flags=regex.I) and sel.lower() not in (
                    "html", "body"):
                tags.add(sel.lower())
    return classes, ids, tags


def remote_urls(css: str) -> list[tuple[str, bool]]:
    """Remote URLs in a stylesheet or style attribute, each with 'only when printing'."""
    out = []
    printing = [(m.start(), m.end()) for m in _MEDIA.finditer(css)
                if "print" in m.group()[:40].lower()]
    for rx, grp in ((URL_IN_CSS, 2), (IMPORT_RE, 1)):
        for m in rx.finditer(css):
            url = m.group(grp).strip()
            if url.lower().startswith(("http:", "https:", "//")):
                out.append((url, any(a <= m.start() < b for a, b in printing)))
    return out


def strip_remote(css: str) -> str:
    css = IMPORT_RE.sub("", css)
    return URL_IN_CSS.sub(
        lambda m: "none" if m.group(2).strip().lower().startswith(("http", "//")) else m.group(),
        css)
