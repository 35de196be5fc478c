"""STARTTLS with a lean TLS layer.

asyncio's ``SSLProtocol`` allocates a 256 KB read buffer per connection the moment it is
made (``max_size``), before a byte of the handshake: 600 clients that say STARTTLS and
then nothing held ~190 MB of the relay. SMTP replies and commands are small and a TLS
record is at most 16 KB, so 32 KB reads lose nothing but the memory. The upgrade itself
is aiosmtpd's (``SMTP.smtp_STARTTLS``), with this protocol class in place of asyncio's.
"""

from __future__ import annotations

import asyncio
from asyncio import sslproto
from typing import Any

from aiosmtpd.smtp import TLSSetupException


class LeanSSLProtocol(sslproto.SSLProtocol):
    max_size = 32 * 1024  # asyncio's default: 256 KB, allocated per connection


async def start_tls(server: Any) -> None:
    """Answer 220 and take the handshake over the session's transport (as aiosmtpd does);
    the handshake is the client's to finish, timed by the gate like a wait for a command.
    Raises TLSSetupException when it fails."""
    await server.push("220 Ready to start TLS")
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
