"""HTML building blocks: escaping, the page layout, small widgets.

Every value from the archive (subjects, addresses, bodies, findings, even order ids from
the URL) is attacker-controlled, so nothing reaches the page without ``esc``. There is
one way in for trusted markup, ``Html``, which only this package's code creates;
templates are plain f-strings whose every ``{}`` is either ``esc(...)`` or an ``Html``.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from urllib.parse import quote, urlencode

import nh3

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-src 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
VERDICT_CLASS = {"deliver": "ok", "redact": "warn", "reject": "bad", "refused": "bad",
                 "tempfail": "muted", "absorbed": "muted"}  # fmt: skip
# Every marker relay.policy.markers writes reads "[... removed]".
MARKER = re.compile(r"\[[a-z ]{1,40} removed\]")


class Html(str):
    """Markup built by this package, safe to embed as is."""


def esc(value: object) -> Html:
    if isinstance(value, Html):
        return value
    return Html(html.escape("" if value is None else str(value), quote=True))


def join(items: Iterable[str]) -> Html:
    return Html("".join(esc(i) for i in items))


def url(path: str, **params: object) -> Html:
    """A link target: the path is ours, the parameters are encoded, the whole escaped."""
    query = urlencode({k: v for k, v in params.items() if v not in (None, "")})
    path = quote(path, safe="/")
    return esc(f"{path}?{query}" if query else path)


def verdict(value: str) -> Html:
    cls = VERDICT_CLASS.get(value, "muted")
    return Html(f'<span class="verdict {cls}" data-verdict="{esc(value)}">{esc(value)}</span>')


def marked(text: str, excerpts: Iterable[str] = ()) -> Html:
    """Escaped text with redaction markers, and the findings' excerpts (what was found
    in the original), wrapped in ``<mark>``. The text is split on the raw string and each
    piece escaped on its own, so neither a marker nor an excerpt can bring markup in."""
    wanted = sorted({e for e in excerpts if len(e.strip()) >= 3}, key=len, reverse=True)
    pattern = MARKER.pattern + "".join("|" + re.escape(e) for e in wanted)
    out, at = [], 0
    for m in re.finditer(pattern, text):
        cls = "redaction" if MARKER.fullmatch(m.group(0)) else "found"
        out.append(f'{esc(text[at : m.start()])}<mark class="{cls}">{esc(m.group(0))}</mark>')
        at = m.end()
    out.append(esc(text[at:]))
    return Html("".join(out))


def sanitized_frame(source: str, title: str) -> Html:
    """Archived HTML, cleaned by nh3, in an iframe sandboxed without scripts, forms or
    same-origin rights; the page's CSP (inherited by srcdoc) blocks remote images too."""
    clean = nh3.clean(source, link_rel="noopener noreferrer nofollow")
    return Html(
        f'<iframe class="html-part" sandbox="" referrerpolicy="no-referrer" '
        f'title="{esc(title)}" srcdoc="{esc(clean)}"></iframe>'
    )


def table(head: Iterable[str], rows: Iterable[Iterable[object]], cls: str = "") -> Html:
    """Cells are escaped unless they are ``Html``."""
    th = "".join(f"<th>{esc(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in rows)
    return Html(f'<table class="{esc(cls)}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody>'
                "</table>")  # fmt: skip


def findings_table(findings: list[dict[str, object]]) -> Html:
    if not findings:
        return Html('<p class="muted">No findings.</p>')
    rows = [
        [f.get("kind", ""), f.get("rule", ""), f.get("action", ""), f.get("where", ""),
         f.get("excerpt", f.get("detail", ""))]
        for f in findings if isinstance(f, dict)
    ]  # fmt: skip
    return table(("kind", "rule", "action", "where", "excerpt"), rows, "findings")


def page(title: str, body: Html, *, logged_in: bool = True) -> Html:
    nav = (
        '<nav><a href="/ui/">Search</a> <a href="/ui/reports/response-times">Response times</a>'
        '<form method="post" action="/ui/logout" class="logout">'
        '<button type="submit">Log out</button></form></nav>'
        if logged_in
        else ""
    )
    return Html(
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)} · Message Center</title>"
        '<link rel="stylesheet" href="/ui/static/web.css"></head><body>'
        f'<header><h1><a href="/ui/">Message Center</a></h1>{nav}</header>'
        f"<main><h2>{esc(title)}</h2>{body}</main></body></html>"
    )
