"""The relay as tests and embedders make it: relay.app's App, with the parts chosen by
keyword (``Relay(settings, worker=False, policy=None)``) instead of read from settings.

The processes build through ``relay.app.build``; this face keeps the arguments the test
suite and `relay.templates` have always used. Start-up order, shutdown and signals are
relay.app's (see there).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from relay.app import App, Parts, Roles, load_policy, run
from relay.delivery.transport import Transport
from relay.delivery.worker import Signer
from relay.pipeline import Authenticator, Policy, registered_sender
from relay.settings import Settings
from relay.smtp.tls import tls_context

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["Relay", "load_policy", "run_forever", "tls_context"]


class Relay(App):
    """SMTP listener and delivery worker (each optional) on one loop."""

    def __init__(
        self,
        settings: Settings,
        *,
        smtp: bool = True,
        worker: bool = True,
        policy: Policy | Literal["settings"] | None = "settings",
        authenticator: Authenticator | None = None,
        signer: Signer | None = None,
        engine: AsyncEngine | None = None,
        transport: Transport | None = None,
    ) -> None:
        parts = Parts(
            policy=policy,
            authenticator=authenticator or registered_sender,
            signer=signer,
            engine=engine,
            transport=transport,
        )
        super().__init__(settings, Roles(smtp=smtp, worker=worker), parts)


async def run_forever(relay: App, **_: Any) -> None:
    """Run until SIGTERM or SIGINT, then shut down gracefully; SIGHUP reloads TLS."""
    await run(relay)
