"""Golden .eml pairs for the anonymising rewrite: NAME.in.eml -> NAME.out.eml, byte for byte.

Regenerate after a deliberate change with RELAY_REGENERATE_GOLDEN=1, then read the diff.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from relay.mail.parse import intake
from relay.mail.rewrite import Rewrite, map_thread_ids, rewrite_message

GOLDEN = Path(__file__).parent / "golden"
NOW = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)
KNOWN = {"rel0000000000000000000000001@relay.example": "CAF+abc123@mail.buyer.example"}

CASES = {
    "plain": dict(
        from_name="Alice via Marketplace",
        from_alias="b-zyxwvutsrqponmlkjihg@relay.example",
        to_name="Shop GmbH",
        to_address="support@shop.example",
        irt=(),
        refs=(),
    ),
    "reply": dict(
        from_name="Shop GmbH via Marketplace",
        from_alias="s-abcdefghijklmnopqrst@relay.example",
        to_name="Jürgen Müller",
        to_address="juergen@buyer.example",
        irt=("rel0000000000000000000000001@relay.example",),
        refs=("unknown-thread@elsewhere.example", "rel0000000000000000000000001@relay.example"),
    ),
    "minimal": dict(
        from_name="Buyer via Marketplace",
        from_alias="b-zyxwvutsrqponmlkjihg@relay.example",
        to_name="",
        to_address="support@shop.example",
        irt=(),
        refs=(),
    ),
}


def _rewrite(name: str, raw: bytes) -> bytes:
    c = CASES[name]
    inbound = intake(raw, max_hops=30)
    assert not hasattr(inbound, "code"), inbound
    rw = Rewrite(
        from_name=c["from_name"],
        from_alias=c["from_alias"],
        to_name=c["to_name"],
        to_address=c["to_address"],
        marketplace="Marketplace",
        message_id=f"golden{name}0000000000000000@relay.example",
        in_reply_to=map_thread_ids(c["irt"], KNOWN.get),
        references=map_thread_ids(c["refs"], KNOWN.get),
        hops=inbound.hops,
        relay_host="mx.relay.example",
        now=NOW,
    )
    return rewrite_message(raw, rw)


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_rewrite(name: str) -> None:
    raw = (GOLDEN / f"{name}.in.eml").read_bytes()
    out = _rewrite(name, raw)
    expected_path = GOLDEN / f"{name}.out.eml"
    if os.environ.get("RELAY_REGENERATE_GOLDEN") or not expected_path.exists():
        expected_path.write_bytes(out)
    assert out == expected_path.read_bytes()


@pytest.mark.parametrize("name", sorted(CASES))
def test_rewrite_leaves_no_sender_trace(name: str) -> None:
    """Whatever the golden files say, no sender address, domain or IP may survive."""
    out = _rewrite(name, (GOLDEN / f"{name}.in.eml").read_bytes()).lower()
    sender_domain = b"shop.example" if name == "reply" else b"buyer.example"
    head = out.split(b"\r\n\r\n", 1)[0]
    if name == "reply":  # the recipient is a buyer; its own address is in To
        head = head.replace(b"juergen@buyer.example", b"")
    else:
        head = head.replace(b"support@shop.example", b"")
    for trace in (sender_domain, b"203.0.113.7", b"10.0.0.2", b"elsewhere.example"):
        assert trace not in head, trace
    parsed = message_from_bytes(out, policy=policy.default)
    assert len(parsed.get_all("From")) == 1 and len(parsed.get_all("Message-ID")) == 1
    assert parsed["Message-ID"].endswith("@relay.example>")
    for dropped in (
        "Received-SPF",
        "DKIM-Signature",
        "Authentication-Results",
        "Cc",
        "Sender",
        "X-Mailer",
        "Return-Path",
        "List-Unsubscribe",
        "Thread-Index",
    ):
        assert parsed[dropped] is None, dropped


def test_threading_maps_known_ids_and_drops_the_rest() -> None:
    out = _rewrite("reply", (GOLDEN / "reply.in.eml").read_bytes())
    parsed = message_from_bytes(out, policy=policy.default)
    assert parsed["In-Reply-To"] == "<CAF+abc123@mail.buyer.example>"
    assert parsed["References"] == "<CAF+abc123@mail.buyer.example>"
    assert str(parsed["Subject"]) == "Re: Ihre Bestellung – Lieferung morgen"
    assert parsed["To"].addresses[0].display_name == "Jürgen Müller"
