"""Serving the API with uvicorn, alone (``relay api``) or beside the SMTP listener.

``ApiServer`` runs on the caller's event loop, so the composition root (relay.app) can
start it as one more component next to the listener and the worker, sharing their
database engine; the process's signals are relay.app's, never uvicorn's.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

import structlog
import uvicorn
from sqlalchemy.ext.asyncio import AsyncEngine

from relay.api import create_app
from relay.settings import Settings, SettingsError, parse_hostport
from relay.uvicorn_hosted import HostedServer

log = structlog.get_logger("relay.api")
MIN_TOKEN = 16


def check_tokens(settings: Settings) -> None:
    """Refuse to serve with short tokens or none: an API nobody can use is a typo."""
    api = settings.api
    for key in ("marketplace_tokens", "ops_tokens"):
        for token in getattr(api, key):
            if len(token) < MIN_TOKEN:
                raise SettingsError(f"setting 'api.{key}': tokens need {MIN_TOKEN}+ characters")
    if not api.marketplace_tokens and not api.ops_tokens:
        raise SettingsError("setting 'api.marketplace_tokens'/'api.ops_tokens': no tokens set")


def make_server(settings: Settings, engine: AsyncEngine) -> uvicorn.Server:
    check_tokens(settings)
    try:
        host, port = parse_hostport(settings.api.listen, 8025)
    except ValueError as err:
        raise SettingsError(f"setting 'api.listen': {err}") from None
    config = uvicorn.Config(
        create_app(settings, engine),
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="off",
        server_header=False,
        proxy_headers=False,
    )
    # The host process owns SIGINT/SIGTERM and tells us to stop through ``stop``.
    return HostedServer(config)


def bind(settings: Settings) -> socket.socket:
    host, port = parse_hostport(settings.api.listen, 8025)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio turns Nagle off (TCP_NODELAY) on accepted connections
    # only for listening sockets whose proto says TCP; without it a kept-alive client
    # waited ~40 ms more per response (delayed ACK against Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise SettingsError(
            f"setting 'api.listen': cannot listen on {settings.api.listen}: {err.strerror}"
        ) from None
    sock.set_inheritable(True)
    return sock


def bound_port(server: uvicorn.Server) -> int:
    """The port actually bound (``api.listen`` may say port 0)."""
    return int(server.servers[0].sockets[0].getsockname()[1])


class ApiServer:
    """The API as a component of the process (relay.app): ``start()`` returns once it
    listens (or raises SettingsError), ``stop()`` finishes open requests. ``done`` is
    the serving task, so the host notices if uvicorn stops on its own."""

    def __init__(self, settings: Settings, engine: AsyncEngine) -> None:
        self.settings = settings
        self.server = make_server(settings, engine)
        self.done: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        """The port actually bound (``api.listen`` may say port 0)."""
        return bound_port(self.server)

    async def start(self) -> None:
        # Bind here, not in uvicorn: its bind failure is sys.exit(), which would escape
        # the task and stop the whole event loop (the SMTP relay too, when embedded).
        sock = bind(self.settings)
        self.done = asyncio.create_task(self.server.serve(sockets=[sock]), name="api")
        while not self.server.started and not self.done.done():  # noqa: ASYNC110 - no event
            await asyncio.sleep(0.01)
        if not self.server.started:
            sock.close()
            done, self.done = self.done, None
            await done
            listen = self.settings.api.listen
            raise SettingsError(f"setting 'api.listen': cannot serve on {listen}")
        log.info("api.started", port=self.port)

    async def stop(self) -> None:
        if self.done is None:
            return
        self.server.should_exit = True
        await self.done


async def serve_api(
    settings: Settings,
    engine: AsyncEngine,
    stop: asyncio.Event,
    on_start: Callable[[int], None] | None = None,
) -> None:
    """Serve until ``stop`` is set, then finish open requests and return (tests and
    embedders; the processes run the API as an ApiServer of relay.app).

    ``on_start`` receives the bound port once listening (``api.listen`` may say port 0).
    """
    api = ApiServer(settings, engine)
    await api.start()
    assert api.done is not None
    if on_start is not None:
        on_start(api.port)
    waiter = asyncio.create_task(stop.wait())
    await asyncio.wait([api.done, waiter], return_when="FIRST_COMPLETED")
    waiter.cancel()
    await api.stop()


async def run_relay_and_api(relay: Any) -> None:
    """``relay.app.run`` of a relay with the API added: SMTP relay, worker and API on one
    loop and one database engine, until SIGTERM/SIGINT. If the API cannot listen, the
    relay is stopped again and the error raised, so a bad ``api.listen`` never leaves a
    half-started process."""
    from relay.app import run

    await run(relay.with_api())
