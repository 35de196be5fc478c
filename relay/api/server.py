"""Serving the API with uvicorn, alone (``relay api``) or beside the SMTP listener.

``serve_api`` runs on the caller's event loop, so ``relay serve`` can start it as one more
task next to the listener and the worker, sharing their database engine.
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


async def serve_api(
    settings: Settings,
    engine: AsyncEngine,
    stop: asyncio.Event,
    on_start: Callable[[int], None] | None = None,
) -> None:
    """Serve until ``stop`` is set, then finish open requests and return.

    ``on_start`` receives the bound port once listening (``api.listen`` may say port 0).
    """
    server = make_server(settings, engine)
    # Bind here, not in uvicorn: its bind failure is sys.exit(), which would escape the
    # task and stop the whole event loop (the SMTP relay too, when embedded).
    sock = bind(settings)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="api")
    while not server.started and not task.done():  # noqa: ASYNC110 - uvicorn has no event
        await asyncio.sleep(0.01)
    if not server.started:
        sock.close()
        await task
        raise SettingsError(f"setting 'api.listen': cannot serve on {settings.api.listen}")
    log.info("api.started", port=bound_port(server))
    if on_start is not None:
        on_start(bound_port(server))
    waiter = asyncio.create_task(stop.wait())
    await asyncio.wait([task, waiter], return_when="FIRST_COMPLETED")
    waiter.cancel()
    server.should_exit = True
    await task


async def run_relay_and_api(relay: Any) -> None:
    """``relay.service.run_forever`` plus the API on the same loop and database engine.

    Runs until SIGTERM/SIGINT; if the API cannot listen, the relay is stopped again and
    the error raised, so a bad ``api.listen`` never leaves a half-started process.
    """
    import signal

    check_tokens(relay.settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if hasattr(relay, "reload_tls"):  # as in run_forever: SIGHUP reloads the certificate
        loop.add_signal_handler(signal.SIGHUP, relay.reload_tls)
    await relay.start()
    api = asyncio.create_task(serve_api(relay.settings, relay.engine, stop), name="api")
    waiter = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait([api, waiter], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.set()
        waiter.cancel()
        try:
            await api
        finally:
            await relay.stop()
