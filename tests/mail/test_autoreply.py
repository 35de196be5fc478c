"""RFC 3834 automatic-reply detection."""

from __future__ import annotations

import email
import email.policy

import pytest

from relay.mail.autoreply import is_automatic


def msg(headers: str) -> email.message.EmailMessage:
    raw = f"From: a@b.example\r\nTo: c@d.example\r\nSubject: x\r\n{headers}\r\nbody\r\n"
    return email.message_from_string(raw, policy=email.policy.default)  # type: ignore[return-value]


@pytest.mark.parametrize(
    "headers",
    [
        "Auto-Submitted: auto-replied\r\n",
        "Auto-Submitted: auto-generated\r\n",
        "Auto-Submitted: auto-notified; owner-email=x@y.example\r\n",
        "Precedence: bulk\r\n",
        "Precedence: junk\r\n",
        "Precedence: list\r\n",
        "Precedence: auto_reply\r\n",
        "X-Autoreply: yes\r\n",
        "X-Autorespond: on\r\n",
        "X-Auto-Response-Suppress: All\r\n",
        "List-Id: <sellers.lists.example>\r\n",
        "Return-Path: <>\r\n",
        "Return-Path: <MAILER-DAEMON@mx.example>\r\n",
    ],
)
def test_automatic(headers: str) -> None:
    assert is_automatic(msg(headers))


@pytest.mark.parametrize(
    "headers",
    ["", "Auto-Submitted: no\r\n", "Precedence: normal\r\n", "Return-Path: <a@b.example>\r\n"],
)
def test_human(headers: str) -> None:
    assert not is_automatic(msg(headers))
