"""aiosmtpd's Session and Envelope with what the relay keeps on them, typed.

relay.smtp.server.RelaySMTP makes these (``_create_session``/``_create_envelope``), so
the handler's hooks (relay.smtp.handler) receive them and can say so in their signatures
instead of setting untyped attributes on aiosmtpd's objects.
"""

from __future__ import annotations

from typing import Any

from aiosmtpd.smtp import Envelope, Session

from relay.store.resolve import Resolution


class RelaySession(Session):
    """One SMTP connection.

    ``relay_id`` names the session in every log line. ``peer`` is typed ``Any`` because
    aiosmtpd declares ``str | None`` but stores the transport's ``peername``, a
    ``(host, port)`` tuple for TCP; PROXY and XFORWARD replace it by the real client's.
    ``proxy_peer`` (the balancer or Postfix that spoke for that client) is absent until
    one of them has named a client: ``hasattr(session, "proxy_peer")`` asks exactly that.
    """

    relay_id: str
    peer: Any
    proxy_peer: Any


class RelayEnvelope(Envelope):
    """One transaction: the recipients resolved at RCPT, by kind (party aliases, signed
    return paths, ops mailboxes such as postmaster@); the handler refuses to mix kinds."""

    def __init__(self) -> None:
        super().__init__()
        self.resolutions: list[Resolution] = []
        self.bounce_tokens: list[str] = []
        self.ops_mailboxes: list[str] = []
