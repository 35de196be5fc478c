"""HTML helpers the templates call: markup built from escaped pieces, and the headers.

The templates (Jinja2, autoescape on) escape every value; the helpers here return
``markupsafe.Markup`` only for markup they build themselves, escaping each piece of
archive text they put in it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote, urlencode

import nh3
from markupsafe import Markup, escape

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


def url(path: str, **params: object) -> str:
    """A link target: the path is ours, the parameters are encoded (the template escapes
    the whole when it puts it in an attribute)."""
    query = urlencode({k: v for k, v in params.items() if v not in (None, "")})
    path = quote(path, safe="/")
    return f"{path}?{query}" if query else path


def marked(text: str, excerpts: Iterable[str] = ()) -> Markup:
    """Escaped text with redaction markers, and the findings' excerpts (what was found
    in the original), wrapped in ``<mark>``. The text is split on the raw string and each
    piece escaped on its own, so neither a marker nor an excerpt can bring markup in."""
    wanted = sorted({e for e in excerpts if len(e.strip()) >= 3}, key=len, reverse=True)
    pattern = MARKER.pattern + "".join("|" + re.escape(e) for e in wanted)
    out, at = [], 0
    for m in re.finditer(pattern, text):
        cls = "redaction" if MARKER.fullmatch(m.group(0)) else "found"
        out.append(f'{escape(text[at : m.start()])}<mark class="{cls}">{escape(m.group(0))}</mark>')
        at = m.end()
    out.append(str(escape(text[at:])))
    return Markup("".join(out))


def sanitized_frame(source: str, title: str) -> Markup:
    """Archived HTML, cleaned by nh3, in an iframe sandboxed without scripts, forms or
    same-origin rights; the page's CSP (inherited by srcdoc) blocks remote images too."""
    clean = nh3.clean(source, link_rel="noopener noreferrer nofollow")
    return Markup(
        f'<iframe class="html-part" sandbox="" referrerpolicy="no-referrer" '
        f'title="{escape(title)}" srcdoc="{escape(clean)}"></iframe>'
    )
