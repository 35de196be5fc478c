"""The SMTP edge put together: one ``RelaySMTP`` per connection, served by the Listener.

What aiosmtpd is told about our sessions (no decoding of DATA, SMTPUTF8 on, the gate
keeping time, STARTTLS from the current certificate) is decided here, so the composition
root (relay.app) hands over settings and parts and never meets an aiosmtpd argument.
"""

from __future__ import annotations

import asyncio

from relay.settings import Settings
from relay.smtp.fdlimit import ensure_fd_limit
from relay.smtp.gate import ConnectionGate
from relay.smtp.handler import RelayHandler
from relay.smtp.listener import Listener
from relay.smtp.proxy import parse_networks
from relay.smtp.server import RelaySMTP
from relay.smtp.tls import Certificate


async def listen(
    settings: Settings, handler: RelayHandler, gate: ConnectionGate, certificate: Certificate
) -> Listener:
    """Bind ``smtp.listen`` and start serving sessions (raises OSError if it cannot)."""
    s = settings
    host, port = s.smtp.host_port
    ensure_fd_limit(s.smtp.max_connections)
    trusted = parse_networks(s.smtp.proxy_networks)
    networks = trusted if s.smtp.proxy_protocol else None
    proxy_timeout = s.smtp.proxy_timeout.total_seconds() if networks is not None else None
    loop = asyncio.get_running_loop()

    def factory() -> RelaySMTP:
        return RelaySMTP(
            handler,
            gate=gate,
            proxy_networks=networks,
            xforward_networks=trusted if s.smtp.xforward else None,
            proxy_protocol_timeout=proxy_timeout,
            data_size_limit=s.smtp.max_message_size,
            hostname=s.relay.helo_name,
            ident="ESMTP relay",
            tls_context=certificate.context,  # read per connection: SIGHUP swaps it
            require_starttls=False,
            timeout=s.smtp.timeout.total_seconds(),  # the gate keeps time (relay.smtp.gate)
            decode_data=False,
            enable_SMTPUTF8=True,
            loop=loop,
        )

    # A deep accept queue: a burst of connections must reach the gate (which can evict
    # to make room), not wait in SYN retries the client sees as seconds of silence.
    # The listener screens each cheaply before a session exists (relay.smtp.listener).
    backlog = max(128, min(4096, s.smtp.max_connections))
    return await Listener.start(
        factory, host, port, gate, backlog=backlog,
        trusted=trusted if s.smtp.proxy_protocol or s.smtp.xforward else None,
        reuse_port=s.smtp.reuse_port or s.smtp.acceptors > 1,
    )  # fmt: skip
