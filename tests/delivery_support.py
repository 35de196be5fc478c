"""Delivery and bounce test parts: scripted and TLS sinks, DSN builder, queue probes.

Used by tests/core/test_delivery.py and tests/core/test_bounces.py."""

from __future__ import annotations

import asyncio
import contextlib
import email as _email
import email.policy as _email_policy
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime, make_msgid
from typing import Any

import sqlalchemy as _sa
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.helpers import BUYER, ORDER, SELLER, Sink, create_order, make_cert, message, send


@dataclass
class CountingSink(Sink):
    """A sink that counts SMTP connections (one EHLO per connection without STARTTLS)."""

    connections: int = 0

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list
    ) -> list[str]:
        self.connections += 1
        session.host_name = hostname
        return responses


async def make_order(relay: Any, *, seller: str = SELLER, order_id: str = ORDER) -> Any:
    return await create_order(
        relay, order_id=order_id, seller=seller, buyer_name="Alice", seller_name="Shop GmbH"
    )


async def buyer_writes(relay: Any, order: Any, subject: str = "Question about my order") -> None:
    """The buyer writes to the seller alias; the relay must answer 250."""
    data = message(BUYER, order.seller_alias, subject=subject).as_bytes()
    code, text = await send(relay.port, BUYER, [order.seller_alias], data)
    assert code == 250, text


async def delivery_rows(engine: Any) -> list[Any]:
    from relay.db import read_tx
    from relay.store.tables import deliveries

    async with read_tx(engine) as conn:
        return list((await conn.execute(_sa.select(deliveries).order_by(deliveries.c.id))).all())


async def event_names(engine: Any, delivery_id: int) -> list[str]:
    from relay.db import read_tx
    from relay.store.tables import delivery_events

    async with read_tx(engine) as conn:
        rows = await conn.execute(
            _sa.select(delivery_events.c.event)
            .where(delivery_events.c.delivery_id == delivery_id)
            .order_by(delivery_events.c.id)
        )
        return [r.event for r in rows]


async def notices(engine: Any) -> list[Any]:
    from relay.db import read_tx
    from relay.store.tables import archive as archive_table

    async with read_tx(engine) as conn:
        q = _sa.select(archive_table).where(archive_table.c.kind == "notice")
        return list((await conn.execute(q)).all())


async def wait_until(check: Callable[[], Awaitable[Any]], timeout: float = 10.0) -> Any:
    """Poll ``check`` until it returns something truthy; fail the test on timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.05)


def assert_notice(got: Any, order: Any, *, secret: str = SELLER) -> None:
    """A bounce notice: null return path, auto-replied, names order and alias, not the
    recipient's real address anywhere in its bytes."""
    assert got.mail_from in ("", "<>")  # aiosmtpd reports the null path as "<>"
    assert got.rcpt_tos == [BUYER]
    data = got.data
    parsed = _email.message_from_bytes(data, policy=_email_policy.default)
    assert parsed["Auto-Submitted"] == "auto-replied"
    assert parsed["To"] == BUYER
    body = parsed.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert ORDER in body and ORDER in parsed["Subject"]
    assert order.seller_alias in body
    for text in (data.decode("utf-8", "replace").lower(), body.lower()):
        assert secret.lower() not in text
        assert secret.rpartition("@")[2].lower() not in text


def direct(make_settings: Any, dns_server: Any, sink: Any, **delivery: Any) -> Any:
    return make_settings(
        dns={"nameservers": ["127.0.0.1"], "port": dns_server.port, "timeout": "2s"},
        delivery={"smarthost": "", "mx_port": sink.port, **delivery},
    )


def smarthost(make_settings: Any, sink: Any, **delivery: Any) -> Any:
    return make_settings(delivery={"smarthost": f"127.0.0.1:{sink.port}", **delivery})


def buyer_dns(dns_server: Any) -> None:
    """The buyer's domain: no MX, an A record (notices go there by A fallback)."""
    dns_server.add("buyer.example", "A", "127.0.0.1")


async def all_status(
    engine: Any, status: str | None, count: int, *, last: str | None = None
) -> list[Any] | None:
    """The delivery rows once there are ``count`` of them in ``status`` (or, with
    ``last``, once the newest one is in that state)."""
    rows = await delivery_rows(engine)
    if len(rows) != count:
        return None
    if last is not None:
        return rows if rows[-1].status == last else None
    return rows if all(r.status == status for r in rows) else None


def refuse(address: str, reply: str, times: int | None = None) -> Callable[[str], str | None]:
    """An rcpt_reply that answers ``reply`` for ``address`` (``times`` times, or always)."""
    left = [times]

    def answer(rcpt: str) -> str | None:
        if rcpt.lower() != address.lower() or left[0] == 0:
            return None
        if left[0] is not None:
            left[0] -= 1
        return reply

    return answer


@dataclass
class HangingUpSink(CountingSink):
    """Closes every connection shortly after a message: pooled connections go stale."""

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        reply = await super().handle_DATA(server, session, envelope)
        asyncio.get_running_loop().call_later(0.05, server.transport.close)  # type: ignore[union-attr]
        return reply


@dataclass
class SlowSink(Sink):
    """Takes its time over DATA: longer than the workers' claim lease."""

    delay: float = 1.5

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        await asyncio.sleep(self.delay)
        return await super().handle_DATA(server, session, envelope)


@dataclass
class TlsSink(Sink):
    """A smarthost that speaks TLS (``starttls`` or ``implicit``) and, with ``users``,
    requires AUTH; records whether each message came over TLS and who logged in."""

    cert: Any = None
    key: Any = None
    mode: str = "starttls"
    users: dict[str, str] = field(default_factory=dict)
    logins: list[str] = field(default_factory=list)
    secure: list[bool] = field(default_factory=list)

    def _authenticate(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                      data: Any) -> Any:  # fmt: skip
        from aiosmtpd.smtp import AuthResult

        login, password = data.login.decode(), data.password.decode()
        ok = self.users.get(login) == password
        if ok:
            self.logins.append(login)
        return AuthResult(success=ok, handled=False)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        transport = server.transport
        implicit = transport is not None and transport.get_extra_info("ssl_object") is not None
        self.secure.append(session.ssl is not None or implicit)
        return await super().handle_DATA(server, session, envelope)

    async def start(self) -> None:
        import ssl

        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(self.cert), str(self.key))
        loop = asyncio.get_running_loop()
        auth: dict[str, Any] = (
            {"authenticator": self._authenticate, "auth_required": True} if self.users else {}
        )

        def factory() -> SMTP:
            if self.mode == "implicit":
                return SMTP(self, hostname="sink.test", loop=loop, **auth,
                            auth_require_tls=False)  # fmt: skip
            return SMTP(self, hostname="sink.test", tls_context=ctx, require_starttls=True,
                        loop=loop, **auth)  # fmt: skip

        ssl_arg = ctx if self.mode == "implicit" else None
        self._server = await loop.create_server(factory, "127.0.0.1", 0, ssl=ssl_arg)
        self.port = self._server.sockets[0].getsockname()[1]


def tls_sink(tmp_path: Any, mode: str, users: dict[str, str] | None = None) -> TlsSink:
    """A TlsSink with a fresh certificate (not started: see ``started``)."""
    cert, key = make_cert(tmp_path)
    return TlsSink(cert=cert, key=key, mode=mode, users=users or {})


@contextlib.asynccontextmanager
async def started(server: Any) -> AsyncIterator[Any]:
    """Run a sink (``start``/``stop``) for the duration of a block."""
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@dataclass
class BrokenTlsSink(TlsSink):
    """Offers STARTTLS but cannot complete a handshake (TLS 1.0 only)."""

    async def start(self) -> None:
        import ssl
        import warnings

        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(self.cert), str(self.key))
        with warnings.catch_warnings():  # deprecated, which is the point
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SMTP(self, hostname="sink.test", tls_context=ctx, loop=loop), "127.0.0.1", 0
        )
        self.port = self._server.sockets[0].getsockname()[1]


@dataclass
class HostSink(Sink):
    """A sink on a chosen loopback address and port (a second MX on the same port)."""

    host: str = "127.0.0.1"

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SMTP(self, hostname="sink.test", loop=loop), self.host, self.port
        )
        self.port = self._server.sockets[0].getsockname()[1]


def dsn(
    rp: str,
    action: str = "failed",
    status: str = "5.1.1",
    rcpt: str = SELLER,
    more: tuple[str, ...] = (),
) -> bytes:
    """An RFC 3464 report as Postfix writes it; the remote text quotes the recipient.
    ``more`` adds lines after the per-recipient block (further recipients)."""
    lines = [
        "From: Mail Delivery System <MAILER-DAEMON@mx.shop.example>",
        f"To: {rp}",
        "Subject: Undelivered Mail Returned to Sender",
        f"Date: {format_datetime(datetime.now(UTC))}",
        f"Message-ID: {make_msgid(domain='mx.shop.example')}",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B0UND"',
        "",
        "--B0UND",
        "Content-Type: text/plain; charset=us-ascii",
        "",
        "This is the mail system at host mx.shop.example.",
        "",
        f"<{rcpt}>: host mailstore.shop.example said: 550 5.1.1 <{rcpt}>: User unknown",
        "",
        "--B0UND",
        "Content-Type: message/delivery-status",
        "",
        "Reporting-MTA: dns; mx.shop.example",
        f"Arrival-Date: {format_datetime(datetime.now(UTC))}",
        "",
        f"Final-Recipient: rfc822; {rcpt}",
        f"Original-Recipient: rfc822;{rcpt}",
        f"Action: {action}",
        f"Status: {status}",
        "Remote-MTA: dns; mailstore.shop.example",
        f"Diagnostic-Code: smtp; 550 {status} <{rcpt}>: User unknown",
        *more,
        "",
        "--B0UND",
        "Content-Type: text/rfc822-headers",
        "",
        f"To: <{rcpt}>",
        "Subject: Question about my order",
        "",
        "--B0UND--",
        "",
    ]
    return "\r\n".join(lines).encode()


@dataclass
class OneShotSink(CountingSink):
    """Answers 421 to a second transaction on one connection (a server that closed an
    idle connection the relay still thinks is open)."""

    async def handle_MAIL(
        self, server: SMTP, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        session.mails = getattr(session, "mails", 0) + 1
        if session.mails > 1:
            return "421 4.4.2 sink.test closing idle connection"
        envelope.mail_from = address
        return "250 OK"
