"""Every archive record carries the reason code its producer named (issue 11, "Vocabulary,
not strings"), on SQLite and PostgreSQL.

Real SMTP sessions through a relay with the shipped policy, one for each way a record is
made (delivered, held, policy-rejected, a stranger, an intake refusal, a co-recipient's
refusal, an opt-out, a rate limit, the ops mailbox): each record's ``reason_code`` is set
and is the one its outcome implies. And a scan of the source: nothing under ``relay/``
turns reason or reply text back into a code (the store once did, in relay.store.reasons).
"""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from relay.core.outcomes import ReasonCode, Verdict
from relay.db import read_tx
from relay.store import choices
from relay.store.archive import verify
from relay.store.tables import archive
from tests.core.test_hold import UNKNOWN
from tests.core.test_optout import PROACTIVE
from tests.helpers import BUYER, DOMAIN, SELLER, create_order, message, running_relay, send

RELAY = Path(__file__).resolve().parents[2] / "relay"
ORDER2 = "113-4829301-5520418"
OPS = "ops@marketplace-ops.example"
STRANGER = "eve@evil.example"
OFF = {
    "per_party_hour": 0, "per_party_day": 0, "per_order_day": 0, "per_ip_minute": 0,
    "proactive_per_order": 0, "stranger_per_alias_hour": 0, "archive_bytes_per_party_day": 0,
}  # fmt: skip

# The codes each verdict may carry: a code never contradicts its record's verdict.
ALLOWED: dict[str, set[ReasonCode]] = {
    Verdict.DELIVER: {ReasonCode.NONE, ReasonCode.OPS, ReasonCode.NOTICE},
    Verdict.REDACT: {ReasonCode.NONE},
    Verdict.HOLD: {ReasonCode.HELD},
    Verdict.REJECT: {ReasonCode.POLICY},
    Verdict.REFUSED: {
        ReasonCode.STRANGER, ReasonCode.SENDER, ReasonCode.CO_RECIPIENT, ReasonCode.OPTED_OUT,
        ReasonCode.RATE_LIMIT, ReasonCode.STORAGE, ReasonCode.INTAKE, ReasonCode.BUDGET,
        ReasonCode.INTERNAL,
    },
    Verdict.TEMPFAIL: {ReasonCode.SENDER, ReasonCode.RATE_LIMIT, ReasonCode.STORAGE},
    Verdict.ABSORBED: {ReasonCode.DSN, ReasonCode.NOT_DSN, ReasonCode.OPS},
}  # fmt: skip


async def _send(relay: Any, sender: str, rcpts: list[str], subject: str, body: str = "Hello\n",
                **headers: str) -> tuple[int, str]:  # fmt: skip
    raw = message(sender, rcpts[0], subject, body, **headers).as_bytes()
    return await send(relay.port, sender, rcpts, raw)


async def test_every_record_of_the_real_paths_names_its_code(make_settings, sink) -> None:
    settings = make_settings(
        relay={"postmaster": OPS}, delivery={"smarthost": f"127.0.0.1:{sink.port}"},
        limits={**OFF, "per_order_day": 2},
    )  # fmt: skip
    async with running_relay(settings) as relay:
        order = await create_order(relay, buyer_name="Alice", seller_name="Shop")
        other = await create_order(relay, order_id=ORDER2, buyer="bob@buyer.example")
        replies = [
            # delivered (the order's first accepted copy)
            await _send(relay, BUYER, [order.seller_alias], "Parcel",
                        "Hello, when will my parcel arrive? I would like to plan my week.\n"),
            # held: a language the policy cannot name (the order's second copy)
            await _send(relay, SELLER, [order.buyer_alias], "Held", UNKNOWN),
            # rejected by a rule
            await _send(relay, SELLER, [order.buyer_alias], "Offer",
                        "Thank you for your order! Use code SAVE20 for 20% off your next "
                        "purchase in our shop, and see our new summer collection.\n"),
            # a stranger
            await _send(relay, STRANGER, [order.seller_alias], "Stranger"),
            # a co-recipient's refusal: Alice is a stranger to the other order
            await _send(relay, BUYER, [order.seller_alias, other.seller_alias], "Both"),
        ]  # fmt: skip
        # refused at intake, before any parse: a doubled Subject
        doubled = b"Subject: again\r\n" + message(BUYER, order.seller_alias).as_bytes()
        replies.append(await send(relay.port, BUYER, [order.seller_alias], doubled))
        await choices.order_opt_out(relay.engine, order.id, by="marketplace")
        replies.append(await _send(relay, SELLER, [order.buyer_alias], "Day", PROACTIVE))
        # over per_order_day (2): archived bounded, tempfail
        replies.append(await _send(relay, BUYER, [order.seller_alias], "Again",
                                   "Hello again, any news about my parcel this week?\n"))
        # the ops mailbox: delivered to OPS, and an intake refusal
        replies.append(await _send(relay, STRANGER, [f"postmaster@{DOMAIN}"], "Abuse report"))
        doubled = b"Subject: again\r\n" + message(STRANGER, f"abuse@{DOMAIN}").as_bytes()
        replies.append(await send(relay.port, STRANGER, [f"abuse@{DOMAIN}"], doubled))
        assert [code for code, _ in replies] == [
            250, 250, 550, 550, 550, 554, 550, 450, 250, 554
        ], replies
        async with read_tx(relay.engine) as conn:
            q = sa.select(archive.c.kind, archive.c.verdict, archive.c.reason_code)
            rows = [tuple(r) for r in (await conn.execute(q.order_by(archive.c.id))).all()]
        assert (await verify(relay.engine)).ok
    for kind, verdict, code in rows:
        assert code is not None, (kind, verdict)
        assert ReasonCode(code) in ALLOWED[verdict], (kind, verdict, code)
    C = ReasonCode
    assert Counter(rows) == Counter([
        ("message", "deliver", C.NONE), ("message", "hold", C.HELD),
        ("message", "reject", C.POLICY), ("message", "refused", C.STRANGER),
        ("message", "refused", C.CO_RECIPIENT), ("message", "refused", C.STRANGER),
        ("message", "refused", C.INTAKE), ("message", "refused", C.OPTED_OUT),
        ("message", "tempfail", C.RATE_LIMIT),
        ("ops", "deliver", C.OPS), ("ops", "refused", C.INTAKE),
    ])  # fmt: skip


# -- nothing reads text back into a code ------------------------------------------------

_TEXTUAL = ("reason", "reply", "text", "message")  # names that hold words for a person
# The readers (store, metrics, API) and the producers that name codes. relay/web/views.py
# still tells a stranger's record by its reason "stranger" (the literal the chain writes;
# the listing it reads has no code column): not scanned here.
_WHERE = ("store", "metrics.py", "api", "intake", "pipeline.py", "smtp/postmaster.py",
          "ratelimits.py", "bounces_in.py", "bounce.py")  # fmt: skip


def _named_textual(node: ast.AST) -> bool:
    """``reason``, ``row.reason``, ``row["reason"]``, ``row.get("reason")``, ``reply.text``..."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
        if node.func.attr != "get" or not isinstance(node.args[0], ast.Constant):
            return False
        name = str(node.args[0].value)
    elif isinstance(node, ast.Name):
        name = node.id
    elif isinstance(node, ast.Attribute):
        name = node.attr
    elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
        name = str(node.slice.value)
    else:
        return False
    name = name.lower()
    return "code" not in name and any(word in name for word in _TEXTUAL)


def _reads_text(tree: ast.AST) -> list[tuple[int, str]]:
    """Places that test the words of a reason or reply: ``x.startswith(...)`` or
    ``x.endswith(...)`` on one, ``... in reason``, ``reason == "some words"``, or a regular
    expression run over one."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            f = node.func
            if f.attr in ("startswith", "endswith") and _named_textual(f.value):
                found.append((node.lineno, ast.unparse(node)))
            if f.attr in ("match", "search", "fullmatch") and any(
                _named_textual(a) for a in node.args
            ):
                found.append((node.lineno, ast.unparse(node)))
        if isinstance(node, ast.Compare):
            for op, right in zip(node.ops, node.comparators, strict=True):
                if isinstance(op, ast.In | ast.NotIn) and _named_textual(right):
                    found.append((node.lineno, ast.unparse(node)))
            sides = (node.left, *node.comparators)
            words = any(isinstance(s, ast.Constant) and isinstance(s.value, str) and s.value
                        for s in sides)  # fmt: skip
            if any(isinstance(op, ast.Eq | ast.NotEq) for op in node.ops) and words and any(
                _named_textual(s) for s in sides
            ):
                found.append((node.lineno, ast.unparse(node)))
    return found


def _sources() -> list[Path]:
    out = []
    for where in _WHERE:
        path = RELAY / where
        out += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return out


def test_nothing_maps_reason_or_reply_text_to_a_code() -> None:
    assert not (RELAY / "store" / "reasons.py").exists()
    offending = {}
    for path in _sources():
        source = path.read_text()
        assert "store.reasons" not in source, path
        hits = _reads_text(ast.parse(source))
        if hits:
            offending[str(path.relative_to(RELAY))] = hits
    assert offending == {}


def test_the_scan_sees_what_it_forbids() -> None:
    """The scan is not vacuous: each form the store once used is caught."""
    for text in (
        'reason.startswith("internal processing error")',
        'row["reason"].startswith("5.")',
        "x = 'stranger' in record.reason",
        "re.match(r'^[45]\\.', reply_text)",
        "any(reason == r.text for r in R) or reply.text.endswith('x')",
        'label = "stranger" if row.get("reason") == "stranger" else ""',
        'if record.reason != "another recipient refused it": pass',
    ):
        assert _reads_text(ast.parse(text)), text
    assert not _reads_text(ast.parse("code.startswith('5') or 'x' in reason_code"))
    assert not _reads_text(ast.parse('reason_code == "stranger" or reason == ""'))
