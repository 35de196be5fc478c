"""The listener's certificate, and STARTTLS with a lean TLS layer.

``Certificate`` holds the server's TLS context and the certificate's expiry (for
/readyz). Each new SMTP session reads ``context`` when it is made, so ``reload()`` (on
SIGHUP) gives new connections a renewed certificate without a restart while open ones
keep theirs; a file that fails to load is logged and the old certificate stays.

asyncio's ``SSLProtocol`` allocates a 256 KB read buffer per connection the moment it is
made (``max_size``), before a byte of the handshake: 600 clients that say STARTTLS and
then nothing held ~190 MB of the relay. SMTP replies and commands are small and a TLS
record is at most 16 KB, so 32 KB reads lose nothing but the memory. The upgrade itself
is aiosmtpd's (``SMTP.smtp_STARTTLS``), with this protocol class in place of asyncio's.
"""

from __future__ import annotations

import asyncio
import ssl
from asyncio import sslproto
from datetime import datetime
from typing import Any

import structlog
from aiosmtpd.smtp import TLSSetupException

from relay import metrics
from relay.core import replies
from relay.health import cert_expiry
from relay.settings import Settings, SettingsError

log = structlog.get_logger("relay.service")


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The server context for ``smtp.tls_cert``/``tls_key`` (None: no STARTTLS)."""
    smtp = settings.smtp
    if not smtp.tls_cert:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        ctx.load_cert_chain(str(smtp.tls_cert), str(smtp.tls_key) if smtp.tls_key else None)
    except (OSError, ssl.SSLError) as err:
        raise SettingsError(f"setting 'smtp.tls_cert': cannot load certificate: {err}") from None
    return ctx


class Certificate:
    """The current TLS context of the listener and when its certificate expires."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.context: ssl.SSLContext | None = None
        self.expires: datetime | None = None

    def load(self) -> None:
        """Load certificate and key (raises SettingsError); note the expiry for /readyz."""
        s = self.settings.smtp
        ctx = tls_context(self.settings)
        if ctx is None or s.tls_cert is None:
            return
        try:
            expires = cert_expiry(s.tls_cert)
        except (OSError, ValueError) as err:
            raise SettingsError(
                f"setting 'smtp.tls_cert': cannot read certificate: {err}"
            ) from None
        self.context, self.expires = ctx, expires
        metrics.TLS_EXPIRY.set(expires.timestamp())

    def reload(self) -> bool:
        """SIGHUP: new connections get the certificate now on disk; keep the old on error."""
        if self.settings.smtp.tls_cert is None:
            log.info("tls.reload.skipped", reason="no certificate configured")
            return False
        try:
            self.load()
        except SettingsError as err:
            metrics.TLS_RELOADS.labels(result="error").inc()
            log.error("tls.reload.failed", error=str(err))
            return False
        metrics.TLS_RELOADS.labels(result="ok").inc()
        log.info("tls.reloaded", expires=self.expires.isoformat() if self.expires else None)
        return True


class LeanSSLProtocol(sslproto.SSLProtocol):
    max_size = 32 * 1024  # asyncio's default: 256 KB, allocated per connection


async def start_tls(server: Any) -> None:
    """Answer 220 and take the handshake over the session's transport (as aiosmtpd does);
    the handshake is the client's to finish, timed by the gate like a wait for a command.
    Raises TLSSetupException when it fails."""
    await server.push(str(replies.START_TLS))
    waiter = server.loop.create_future()
    server._tls_protocol = LeanSSLProtocol(
        server.loop, server, server.tls_context, waiter, server_side=True
    )
    server._original_transport = server.transport
    server._original_transport.set_protocol(server._tls_protocol)
    server.transport = server._tls_protocol._app_transport
    server._tls_protocol.connection_made(server._original_transport)
    try:
        await waiter
    except asyncio.CancelledError:
        raise
    except Exception as error:
        raise TLSSetupException() from error
