"""``relay.store.search.extract`` (records without precomputed search text: catch_up,
notices, DSNs, ops mail) and the intake path's ``Message.readable_text`` are one rule,
relay.core.values: the same text for the same message, and automatic mail flagged."""

from __future__ import annotations

from email.message import EmailMessage
from email.policy import SMTP

import pytest

from relay.core.values import Message
from relay.mail.parse import intake
from relay.store.search import extract


def _plain() -> bytes:
    msg = EmailMessage(policy=SMTP)
    msg["From"], msg["Subject"] = "a@shop.example", "plain"
    msg.set_content("Hello,\n\n  the parcel   left today.\n")
    return msg.as_bytes()


def _html_only() -> bytes:
    msg = EmailMessage(policy=SMTP)
    msg["From"], msg["Subject"] = "a@shop.example", "html"
    msg.set_content("<p>Hi <b>there</b></p><script>x()</script><style>p{}</style>", "html")
    return msg.as_bytes()


def _alternative_with_attachment() -> bytes:
    msg = EmailMessage(policy=SMTP)
    msg["From"], msg["Subject"] = "a@shop.example", "both"
    msg["Auto-Submitted"] = "auto-replied"
    msg.set_content("plain words")
    msg.add_alternative("<p>html words</p>", subtype="html")
    msg.add_attachment(b"invoice text", maintype="text", subtype="plain", filename="i.txt")
    return msg.as_bytes()


@pytest.mark.parametrize("make", [_plain, _html_only, _alternative_with_attachment])
def test_extract_is_the_readable_text_of_the_message(make) -> None:  # type: ignore[no-untyped-def]
    raw = make()
    message = intake(raw, max_hops=30)
    assert isinstance(message, Message)
    text, automatic = extract(raw)
    assert text == message.readable_text
    assert automatic is (make is _alternative_with_attachment)


def test_what_the_rule_keeps() -> None:
    assert extract(_plain())[0] == "Hello, the parcel left today."
    assert extract(_html_only())[0] == "Hi there"
    assert extract(_alternative_with_attachment())[0] == "plain words"
