"""The pages' bodies, from already-loaded data to ``Html``.

No database access here and no request: each function takes plain values, which keeps
the escaping reviewable in one place (every ``{}`` below is ``esc``-ed or ``Html``).
"""

from __future__ import annotations

import json
from typing import Any

from relay.web.html import (
    Html,
    esc,
    findings_table,
    marked,
    sanitized_frame,
    table,
    url,
    verdict,
)
from relay.web.mime import Decoded

DIRECTIONS = ("", "buyer-to-seller", "seller-to-buyer", "notice")
VERDICTS = ("", "deliver", "redact", "reject", "refused", "absorbed")
KINDS = ("", "message", "notice", "dsn")


def login(next_path: str, error: str = "") -> Html:
    err = f'<p class="error" role="alert">{esc(error)}</p>' if error else ""
    return Html(
        f'{err}<form method="post" action="/ui/login" class="login">'
        f'<input type="hidden" name="next" value="{esc(next_path)}">'
        '<label>Ops token <input type="password" name="token" autocomplete="current-password" '
        'required autofocus></label> <button type="submit">Log in</button></form>'
    )


def _select(name: str, options: tuple[str, ...], current: str) -> Html:
    opts = "".join(
        f'<option value="{esc(o)}"{" selected" if o == current else ""}>{esc(o or "any")}</option>'
        for o in options
    )
    return Html(f'<label>{esc(name.replace("_", " "))} <select name="{esc(name)}">{opts}'
                "</select></label>")  # fmt: skip


def _input(name: str, current: str, kind: str = "text", label: str = "") -> Html:
    return Html(f'<label>{esc(label or name.replace("_", " "))} <input type="{esc(kind)}" '
                f'name="{esc(name)}" value="{esc(current)}"></label>')  # fmt: skip


def search_form(q: dict[str, str]) -> Html:
    g = lambda k: q.get(k, "")  # noqa: E731
    return Html(
        '<form method="get" action="/ui/" class="search" role="search">'
        f"{_input('text', g('text'), 'search', 'full text')}"
        f"{_input('order_id', g('order_id'))}{_input('seller', g('seller'))}"
        f"{_input('buyer', g('buyer'))}{_input('party', g('party'))}"
        f"{_select('direction', DIRECTIONS, g('direction'))}"
        f"{_select('verdict', VERDICTS, g('verdict'))}{_select('kind', KINDS, g('kind'))}"
        f"{_input('finding_kind', g('finding_kind'))}"
        f"{_input('since', g('since'), 'date')}{_input('until', g('until'), 'date')}"
        '<button type="submit">Search</button></form>'
    )


def _kinds(findings: list[dict[str, Any]]) -> str:
    return ", ".join(sorted({str(f.get("kind", "")) for f in findings if isinstance(f, dict)}))


def results(q: dict[str, str], rows: list[dict[str, Any]], more: bool, error: str) -> Html:
    if error:
        return Html(f'{search_form(q)}<p class="error" role="alert">{esc(error)}</p>')
    if not rows:
        return Html(f'{search_form(q)}<p class="muted">No records match.</p>')
    body = table(
        ("#", "time (UTC)", "order", "direction", "verdict", "subject", "findings", "delivery"),
        [
            [
                Html(f'<a href="/ui/records/{int(r["id"])}">{int(r["id"])}</a>'),
                r["created_at"][:19].replace("T", " "),
                Html(f'<a href="{url("/ui/orders/" + r["order_id"])}">{esc(r["order_id"])}</a>')
                if r.get("order_id") else "",
                r["direction"], verdict(r["verdict"]), r["subject"], _kinds(r["findings"]),
                ", ".join(str(d["status"]) for d in r.get("deliveries", [])),
            ]
            for r in rows
        ],
        "results",
    )  # fmt: skip
    older = ""
    if more:
        params = {**q, "before_id": rows[-1]["id"]}
        older = f'<p><a class="older" href="{url("/ui/", **params)}">Older records →</a></p>'
    return Html(f"{search_form(q)}{body}{older}")


def _first_text(decoded: Decoded | None) -> str:
    if decoded is None:
        return ""
    for part in decoded.parts:
        if part.content_type == "text/plain":
            return part.text
    return decoded.parts[0].text if decoded.parts else ""


def thread(order: dict[str, Any] | None, items: list[dict[str, Any]]) -> Html:
    """Oldest first; each message with its verdict, findings and the text the recipient
    got (or, for a message that was not delivered, what was sent)."""
    head = ""
    if order:
        head = table(
            ("order", "status", "buyer", "buyer alias", "seller", "seller alias"),
            [[order["id"], order["status"], order["buyer"], order["buyer_alias"],
              order["seller"], order["seller_alias"]]],
            "order",
        )  # fmt: skip
    cards = []
    for it in items:
        r, shown = it["row"], it["decoded"]
        which = "delivered" if it["delivered"] else "original (not delivered)"
        findings = r["findings"]
        # What was found is marked only in a copy that still holds it (one not delivered).
        found = [] if it["delivered"] else [
            str(f.get("excerpt", "")) for f in findings if isinstance(f, dict)
        ]  # fmt: skip
        cls = "has-findings" if findings else ""
        cards.append(
            f'<article class="message {esc(r["direction"])} {cls}" id="m{int(r["id"])}">'
            f'<h3><a href="/ui/records/{int(r["id"])}">#{int(r["id"])}</a> '
            f"{esc(r['created_at'][:19].replace('T', ' '))} · {esc(r['direction'])} "
            f"{verdict(r['verdict'])}</h3>"
            f'<p class="subject">{esc(r["subject"])}</p>'
            + (f'<p class="reason">{esc(r["reason"])}</p>' if r.get("reason") else "")
            + (findings_table(findings) if findings else "")
            + f'<p class="which muted">{esc(which)} · <a class="compare-link" '
            f'href="/ui/records/{int(r["id"])}">original beside delivered</a></p>'
            f'<pre class="body">{marked(_first_text(shown), found)}</pre>'
            "</article>"
        )
    if not cards:
        cards.append('<p class="muted">No messages in this order yet.</p>')
    return Html(head + "".join(cards))


def _side(title: str, decoded: Decoded | None, download: str, excerpts: list[str]) -> Html:
    if decoded is None:
        none = '<p class="muted">No copy: this message was not delivered.</p>'
        return Html(f'<section class="side"><h3>{esc(title)}</h3>{none}</section>')
    parts = []
    for i, part in enumerate(decoded.parts):
        note = " (truncated)" if part.truncated else ""
        if part.content_type == "text/html":
            parts.append(
                f"<details><summary>{esc(part.content_type)}{esc(note)}: HTML source as text"
                f'</summary><pre class="body">{marked(part.text, excerpts)}</pre></details>'
                f"{sanitized_frame(part.text, f'{title}, part {i + 1}')}"
            )
        else:
            parts.append(f'<p class="muted">{esc(part.content_type)}{esc(note)}</p>'
                         f'<pre class="body">{marked(part.text, excerpts)}</pre>')  # fmt: skip
    attachments = table(
        ("attachment", "type", "bytes"),
        [[a.filename or "(unnamed)", a.content_type, a.size] for a in decoded.attachments],
    ) if decoded.attachments else ""  # fmt: skip
    problems = "".join(f'<p class="error">{esc(p)}</p>' for p in decoded.problems)
    return Html(
        f'<section class="side"><h3>{esc(title)}</h3>'
        f'<p><a class="download" href="{esc(download)}" download>Download .eml</a></p>'
        f"{table(('header', 'value'), decoded.headers, 'headers')}{problems}"
        f"{''.join(parts)}{attachments}</section>"
    )


def record(rec: dict[str, Any], original: Decoded | None, delivered: Decoded | None) -> Html:
    rid = int(rec["id"])
    findings = rec["findings"]
    excerpts = [str(f.get("excerpt", "")) for f in findings if isinstance(f, dict)]
    order = (f'<a href="{url("/ui/orders/" + rec["order_id"])}">{esc(rec["order_id"])}</a>'
             if rec.get("order_id") else "")  # fmt: skip
    meta = table(
        ("field", "value"),
        [
            ["order", Html(order)], ["time (UTC)", rec["created_at"]],
            ["kind", rec["kind"]], ["direction", rec["direction"]],
            ["verdict", verdict(rec["verdict"])], ["reason", rec["reason"]],
            ["MAIL FROM", rec["mail_from"]], ["RCPT (real)", rec["rcpt"]],
            ["alias", rec["alias"]], ["client", f'{rec["client_ip"]} ({rec["helo"]})'],
            ["sha256", rec["sha256"]], ["session", rec["session_id"]],
        ],
        "meta",
    )  # fmt: skip
    auth = json.dumps(rec["auth"], indent=1, ensure_ascii=False)
    events = table(
        ("at", "event", "code", "detail"),
        [[e["at"], e["event"], e["code"], e["detail"]] for e in rec["events"]],
    )
    return Html(
        f"{meta}<h3>Findings</h3>{findings_table(findings)}"
        '<div class="compare">'
        f"{_side('Original (as received)', original, f'/ui/records/{rid}/original.eml', excerpts)}"
        f"{_side('Delivered (as sent on)', delivered, f'/ui/records/{rid}/delivered.eml', [])}"
        "</div>"
        f'<h3>Sender authentication</h3><pre class="auth">{esc(auth)}</pre>'
        f"<h3>Delivery events</h3>{events if rec['events'] else Html('<p>None.</p>')}"
    )


def _hours(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds / 3600:.1f} h"


def report(data: dict[str, Any], days: int, seller: str, error: str = "") -> Html:
    opts = "".join(f'<option value="{d}"{" selected" if d == days else ""}>{d} days</option>'
                   for d in (7, 30, 90))  # fmt: skip
    form = (
        '<form method="get" action="/ui/reports/response-times" class="search">'
        f'<label>window <select name="days">{opts}</select></label>'
        f'{_input("seller", seller)}<button type="submit">Show</button></form>'
    )
    if error:
        return Html(f'{form}<p class="error" role="alert">{esc(error)}</p>')
    rows, overdue = [], []
    for s in data["sellers"]:
        rate = "" if s["late_rate"] is None else f"{s['late_rate'] * 100:.1f} %"
        rows.append([s["seller"], s["buyer_messages"], s["answered"], s["answered_late"],
                     s["open_overdue"], s["open_within_deadline"], s["exempted"], rate,
                     _hours(s["average_response_seconds"])])  # fmt: skip
        for o in s["overdue"]:
            link = Html(f'<a href="/ui/records/{int(o["archive_id"])}">#{int(o["archive_id"])}</a>')
            overdue.append([s["seller"], o["order_id"], link, o["received_at"][:19],
                            o["hours_waiting"]])  # fmt: skip
    head = ("seller", "buyer messages", "answered", "late", "open overdue", "open in time",
            "exempted", "late rate", "average response")  # fmt: skip
    body = table(head, rows, "report") if rows else Html('<p class="muted">No buyer messages.</p>')
    late = (Html("<h3>Open and overdue</h3>") + table(
        ("seller", "order", "message", "received (UTC)", "hours waiting"), overdue)
        if overdue else "")  # fmt: skip
    note = (f'<p class="muted">Deadline {int(data["deadline_hours"])} h; generated '
            f'{esc(data["generated_at"][:19])} UTC.</p>')  # fmt: skip
    return Html(f"{form}{note}{body}{late}")
