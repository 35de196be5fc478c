"""The pages, rendered by Jinja2 with autoescape from ``relay/web/templates/``.

Every value from the archive (subjects, addresses, bodies, findings, even order ids from
the URL) is attacker-controlled; autoescape escapes all of it. Markup enters only through
the few helpers registered below (``marked``, ``sanitized_frame``), which escape their
pieces themselves and return ``markupsafe.Markup``. No database access and no request
here: each page takes plain values.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from relay.web.html import VERDICT_CLASS, marked, sanitized_frame, url
from relay.web.mime import Decoded

DIRECTIONS = ("", "buyer-to-seller", "seller-to-buyer", "notice")
VERDICTS = ("", "deliver", "redact", "reject", "refused", "tempfail", "absorbed")
KINDS = ("", "message", "notice", "dsn")


def party_label(row: dict[str, Any]) -> str:
    """Who wrote to whom, as a reader understands it. A refused stranger's mail sits in
    the order's thread under the alias it was sent to, so its direction says where it
    went, not who wrote it: it must not read as if the buyer (or seller) wrote it."""
    direction = str(row.get("direction") or "")
    if row.get("reason") == "stranger":
        to = "seller" if direction == "buyer-to-seller" else "buyer"
        return f"stranger → {to} (refused)"
    if direction == "buyer-to-seller":
        return "buyer → seller"
    if direction == "seller-to-buyer":
        return "seller → buyer"
    return direction or str(row.get("kind") or "")


def party_class(row: dict[str, Any]) -> str:
    return "stranger" if row.get("reason") == "stranger" else ""


def reason_text(row: dict[str, Any]) -> str:
    if row.get("reason") == "stranger":
        return "stranger: the sender is not a party of this order (refused, not delivered)"
    return str(row.get("reason") or "")


def kinds_of(findings: list[Any]) -> str:
    """Finding kinds of a record (stored JSON: an entry that is not an object is skipped)."""
    return ", ".join(sorted({str(f.get("kind", "")) for f in findings if isinstance(f, dict)}))


def hours(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds / 3600:.1f} h"


_CSS = {"pass": "ok", "fail": "bad", "softfail": "warn", "temperror": "warn",
        "permerror": "bad", "neutral": "muted", "none": "muted"}  # fmt: skip


def auth_summary(auth: dict[str, Any]) -> dict[str, Any]:
    """SPF, each DKIM signature and DMARC as rows a person reads: the result, for which
    domain, and who passed (aligned) — instead of the raw JSON, which stays one click away."""
    rows = []
    if auth.get("spf"):
        rows.append({"check": "SPF", "result": auth["spf"], "domain": auth.get("spf_domain", ""),
                     "detail": f"HELO: {auth['helo_spf']}" if auth.get("helo_spf") else ""})
    for sig in auth.get("dkim") or []:
        if isinstance(sig, dict):
            detail = f"selector {sig.get('selector', '')}"
            if sig.get("reason"):
                detail += f"; {sig['reason']}"
            rows.append({"check": "DKIM", "result": sig.get("result", ""),
                         "domain": sig.get("domain", ""), "detail": detail})
    if auth.get("dmarc"):
        aligned = auth.get("passed_by") or ""
        detail = f"policy {auth.get('dmarc_policy') or 'none'}"
        detail += f"; passed by aligned {aligned}" if aligned else "; no aligned pass"
        rows.append({"check": "DMARC", "result": auth["dmarc"],
                     "domain": auth.get("from_domain", ""), "detail": detail})
    for r in rows:
        r["css"] = _CSS.get(str(r["result"]).lower(), "muted")
    return {
        "rows": rows,
        "decision": auth.get("decision", ""),
        "mode": auth.get("mode", ""),
        "raw": json.dumps(auth, indent=1, ensure_ascii=False),
    }  # fmt: skip


@cache
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("relay.web", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(
        marked=marked, sanitized_frame=sanitized_frame, url=url, party_label=party_label,
        party_class=party_class, reason_text=reason_text, kinds_of=kinds_of, hours=hours,
        verdict_class=lambda v: VERDICT_CLASS.get(v, "muted"),
    )  # fmt: skip
    return env


def render(template: str, title: str, *, logged_in: bool = True, **values: Any) -> Markup:
    page = environment().get_template(template)
    return Markup(page.render(title=title, logged_in=logged_in, **values))


def login(next_path: str, error: str = "") -> Markup:
    return render("login.html", "Log in", logged_in=False, next_path=next_path, error=error)


def message(title: str, text: str = "", *, logged_in: bool = True) -> Markup:
    return render("message.html", title, logged_in=logged_in, message=text)


def results(
    q: dict[str, str], rows: list[dict[str, Any]], more: bool, error: str
) -> Markup:
    return render("search.html", "Search", q=q, rows=rows, more=more, error=error,
                  directions=DIRECTIONS, verdicts=VERDICTS, kinds=KINDS)  # fmt: skip


def _first_text(decoded: Decoded | None) -> str:
    if decoded is None:
        return ""
    for part in decoded.parts:
        if part.content_type == "text/plain":
            return part.text
    return decoded.parts[0].text if decoded.parts else ""


def thread(title: str, order: dict[str, Any] | None, items: list[dict[str, Any]]) -> Markup:
    """Oldest first; each message with its verdict, findings and the text the recipient
    got (or, for a message that was not delivered, what was sent)."""
    shown = []
    for it in items:
        findings = it["row"]["findings"]
        # What was found is marked only in a copy that still holds it (one not delivered).
        found = [] if it["delivered"] else [
            str(f.get("excerpt", "")) for f in findings if isinstance(f, dict)
        ]  # fmt: skip
        shown.append({**it, "text": _first_text(it["decoded"]), "found": found})
    return render("thread.html", title, order=order, items=shown)


def record(rec: dict[str, Any], original: Decoded | None, delivered: Decoded | None) -> Markup:
    excerpts = [str(f.get("excerpt", "")) for f in rec["findings"] if isinstance(f, dict)]
    auth = auth_summary(rec["auth"] if isinstance(rec["auth"], dict) else {})
    return render("record.html", f"Record {rec['id']}", rec=rec, original=original,
                  delivered=delivered, excerpts=excerpts, auth=auth)  # fmt: skip


def report(data: dict[str, Any], days: int, seller: str, error: str = "") -> Markup:
    return render("report.html", "Response times", data=data, days=days, seller=seller,
                  error=error)  # fmt: skip
