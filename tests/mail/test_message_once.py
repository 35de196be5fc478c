"""The Message read once at intake says what the readers it replaced said.

The sender check used to read From, To and Cc from the bytes itself
(relay.authn.fromaddr.header_values), the search index parsed the body again, and
is_automatic asked a compat32 header parse. They now read the one Message; these tests
pin that the answers did not change on the header forms intake accepts.
"""

from __future__ import annotations

import email
import email.policy

import pytest

from relay.authn.fromaddr import FromError, header_values, single_from
from relay.core.values import Message
from relay.intake import chain
from relay.intake.read import read
from relay.mail.autoreply import is_automatic
from relay.mail.limits import StructureLimits
from relay.mail.parse import intake

HEADERS = [
    b"From: Kate Seller <kate@shop.example>",
    b"From: =?utf-8?q?K=C3=A4te?= <kate@shop.example>",
    b'From: "Shop (Support)" <kate@shop.example>',
    b"From: kate@shop.example (comment)",
    b"From: a@b.example, c@d.example",
    "From: Käte <käte@bücher.example>".encode(),
    b"From: K\xe4te <kate@shop.example>",
    b"From:\r\n  Kate\r\n <kate@shop.example>",
    "From: Kate <kate@shop.example>\u00a0".encode(),
    b"From: <>",
]


def _raw(from_line: bytes, extra: bytes = b"") -> bytes:
    return (
        from_line + b"\r\nTo: Buyer <b-x@relay.example>, other@else.example\r\n"
        b"Cc: =?utf-8?q?C?= <c@else.example>\r\n" + extra
        + b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n\r\nHello\r\n"
    )  # fmt: skip


@pytest.mark.parametrize("from_line", HEADERS)
def test_from_to_and_cc_read_as_the_sender_check_read_them(from_line: bytes) -> None:
    raw = _raw(from_line)
    message = intake(raw, max_hops=30)
    assert isinstance(message, Message)
    for name in ("from", "to", "cc"):
        assert message.header_values(name) == header_values(raw, name.encode())
    try:
        mailbox = single_from(header_values(raw))
    except FromError as err:
        assert (message.from_mailbox, message.from_error, message.sender) == ("", str(err), None)
    else:
        assert message.from_mailbox == mailbox and message.from_domain == mailbox.split("@")[1]
        assert message.sender is not None
    assert message.subject == "Grüße"


@pytest.mark.parametrize(
    "extra",
    [b"", b"Auto-Submitted: auto-replied\r\n", b"Precedence: bulk\r\n",
     b"List-Id: <x.example>\r\n", b"Return-Path: <>\r\n", b"X-Autoreply: yes\r\n",
     b"Auto-Submitted: no\r\n"],
)  # fmt: skip
def test_automatic_reads_as_a_compat32_parse_read_it(extra: bytes) -> None:
    raw = _raw(HEADERS[0], extra)
    message = intake(raw, max_hops=30)
    assert isinstance(message, Message)
    parsed = email.message_from_bytes(raw, policy=email.policy.compat32)
    assert is_automatic(message) == is_automatic(parsed)


def test_text_parts_are_decoded_once_off_the_loop_and_travel_with_the_message() -> None:
    raw = (
        b"From: kate@shop.example\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/alternative; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\nGr=C3=BC=C3=9Fe  aus\r\n  Berlin\r\n"
        b"--b\r\nContent-Type: text/html\r\n\r\n<p>ignored</p>\r\n--b--\r\n"
    )
    message = read(raw, 30, StructureLimits())
    assert isinstance(message, Message)
    assert "readable_text" in message.__dict__  # decoded in read(), in the worker
    assert "text_parts" not in message.__dict__  # only the text crosses back, not twice
    assert message.readable_text == "Grüße aus Berlin"
    assert message.raw == b""  # the caller has the bytes: a worker does not send them back
    whole = message.with_raw(raw)
    assert whole.raw == raw and whole.body.startswith(b"--b") and whole.sender == message.sender
    assert "text_parts" not in whole.__dict__ and whole.readable_text == "Grüße aus Berlin"


def test_the_stages_are_a_table_in_path_order() -> None:
    names = [stage.__name__ for stage in chain.STAGES]
    assert names == ["parse", "check_sender", "load_thread", "judge", "check_opt_out", "rewrite"]
    assert chain.STAGES == chain.MESSAGE + chain.RECIPIENT
