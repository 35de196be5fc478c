"""Helpers for the policy tests: contexts, small messages, the shared case paths."""

from __future__ import annotations

import json
import pathlib
from email.message import EmailMessage
from email.policy import SMTP

from relay.policy import PolicyContext

ROOT = pathlib.Path(__file__).resolve().parents[2]
SHARED = ROOT / ".." / "shared"
CASES = SHARED / "policy-cases"
CORPUS = SHARED / "corpus"


def ctx(direction: str = "seller-to-buyer", **kw) -> PolicyContext:
    kw.setdefault("order_id", "204-3817265-4409183")
    kw.setdefault("buyer_locale", "en-GB")
    kw.setdefault("thread", "reply")
    return PolicyContext(direction=direction, **kw)  # type: ignore[arg-type]


def make(text: str = "", html: str | None = None, subject: str = "Re: your order",
         attachments: list[tuple[bytes, str, str, str]] | None = None) -> bytes:
    """A small message: text (+ optional HTML alternative) + optional attachments."""
    m = EmailMessage()
    m["From"] = "Shop <shop@shop.example>"
    m["To"] = "b-abcdefgh@relay.example"
    m["Subject"] = subject
    m.set_content(text or " ")
    if html is not None:
        m.add_alternative(html, subtype="html")
    for data, maintype, subtype, name in attachments or []:
        m.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return m.as_bytes(policy=SMTP)


def labels() -> list[dict]:
    if not (CASES / "labels.json").exists():
        return []
    return json.loads((CASES / "labels.json").read_text(encoding="utf-8"))
