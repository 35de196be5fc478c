"""A running relay with sender authentication enforced against the loopback DNS world
(tests/authn/conftest.py), for tests that go over real SMTP with real DKIM signatures."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from relay.wiring import auth_parts
from tests.authn.mailworld import World, key
from tests.helpers import running_relay


def publish_key(world: World, domain: str, selector: str = "sel") -> None:
    """Publish the test key of ``domain`` (an A-label) so its signatures verify."""
    world.dns.add(f"{selector}._domainkey.{domain}", "TXT", key(domain)[1])


@contextlib.asynccontextmanager
async def auth_relay(
    make_settings: Any, world: World, sink: Any, policy: Any = None, **sections: Any
) -> AsyncIterator[Any]:
    settings = make_settings(
        delivery={"smarthost": f"127.0.0.1:{sink.port}"},
        auth={"mode": "enforce"},
        dns={"nameservers": ["127.0.0.1"], "port": world.dns.port, "timeout": "2s"},
        **sections,
    )
    async with running_relay(settings, policy=policy, **auth_parts(settings)) as relay:
        yield relay
