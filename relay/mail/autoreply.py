"""Recognising automatic replies (RFC 3834) so the relay never answers them.

Out-of-office replies through an alias are delivered, but the relay must not send a notice
or bounce in reply to one, or two auto-responders can loop forever.
"""

from __future__ import annotations

from typing import Any, Protocol

_PRECEDENCE = {"bulk", "junk", "list", "auto_reply"}
_FLAG_HEADERS = ("x-autoreply", "x-autorespond", "x-autoresponse", "x-auto-response-suppress")


class Headers(Protocol):
    """A header section to ask: ``email.message.Message`` or the intake's
    relay.core.values.Message (whose fields were read once, at intake)."""

    def get(self, name: str, failobj: Any = None) -> Any: ...


def is_automatic(message: Headers) -> bool:
    """True for auto-generated or auto-replied mail, list traffic and bulk mail.

    Signals: ``Auto-Submitted`` other than ``no`` (RFC 3834 §5), ``Precedence: bulk | junk |
    list | auto_reply``, ``X-Autoreply``/``X-Autorespond`` (and ``X-Auto-Response-Suppress``
    that Exchange sets on its own auto-replies), ``List-Id``/``List-Unsubscribe``, and a null
    or ``MAILER-DAEMON`` sender in ``Return-Path``.
    """
    try:
        auto = str(message.get("auto-submitted", "") or "").split(";")[0].strip().lower()
        if auto and auto != "no":
            return True
        precedence = str(message.get("precedence", "") or "").strip().lower()
        if precedence in _PRECEDENCE:
            return True
        if any(message.get(h) is not None for h in _FLAG_HEADERS):
            return True
        if message.get("list-id") is not None or message.get("list-unsubscribe") is not None:
            return True
        return_path = str(message.get("return-path", "") or "").strip().lower()
        if message.get("return-path") is not None and return_path in ("<>", ""):
            return True
        return "mailer-daemon@" in return_path
    except Exception:  # a broken header must not make us answer an auto-reply
        return True
