"""The ops HTTP endpoint: ``/metrics``, ``/healthz``, ``/readyz`` on ``metrics.listen``.

Served by uvicorn on the relay's own event loop (readiness checks and the database
collector are async and need the loop's engine), with prometheus_client's ASGI app for
``/metrics``: no HTTP parsing of our own.

``/healthz`` answers 200 while the process runs its loop (liveness: restart if not).
``/readyz`` answers 200 only when this process should get traffic: database reachable,
SMTP listener bound (when it runs one), content worker processes started and answering
(``policy.workers``), TLS certificate not about to expire, not draining.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import weakref
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
import structlog
from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector, make_asgi_app
from sqlalchemy.ext.asyncio import AsyncEngine

from relay import metrics
from relay.clock import utcnow
from relay.settings import SettingsError

if TYPE_CHECKING:
    from relay.policy_pool import PolicyRunner, ProcessRunner

log = structlog.get_logger("relay.health")
MAX_REQUEST = 8192


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str = ""


Readiness = Callable[[], Awaitable[list[Check]]]


async def check_database(engine: AsyncEngine, timeout: float = 3.0) -> Check:
    try:
        async with asyncio.timeout(timeout), engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))
    except Exception as err:
        return Check("database", False, type(err).__name__)
    return Check("database", True)


# How long one /readyz waits for the content workers to answer before saying "not yet"
# (a warm worker answers a ping in milliseconds; a health checker's timeout is seconds).
READY_WAIT = 0.5
# Per policy runner: the executor last verified and the task verifying it.
_VERIFIED: weakref.WeakKeyDictionary[Any, tuple[Any, asyncio.Task[None]]] = (
    weakref.WeakKeyDictionary()
)


async def _answered(content: ProcessRunner) -> None:
    """One call through the runner (a pool broken by a dead worker is replaced there, as a
    message would replace it: otherwise a relay out of rotation would never heal), then
    every worker started and answered (ProcessRunner.ready)."""
    await content.run(os.getpid)
    await content.ready()


async def check_policy_workers(runner: PolicyRunner) -> Check:
    """Ready once every content worker process has started and answered; again not
    ready when one dies (its pool breaks), until the replacements have. Messages would
    otherwise wait in the queue behind a worker still loading, or fail on a broken pool."""
    content = runner.content
    if content is None:
        return Check("policy_workers", True, "in this process (policy.workers = 0)")
    executor = content.pool.executor
    entry = _VERIFIED.get(runner)
    # ProcessPoolExecutor sets _broken when a worker dies (its management thread notices).
    stale = entry is None or entry[0] is not executor or bool(getattr(executor, "_broken", False))
    failed = entry is not None and entry[1].done() and (
        entry[1].cancelled() or entry[1].exception() is not None
    )
    if stale or failed:
        task = asyncio.create_task(_answered(content), name="policy-ready")
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # retrieved
        entry = _VERIFIED[runner] = (executor, task)
    assert entry is not None
    task = entry[1]
    await asyncio.wait({task}, timeout=READY_WAIT)
    if not task.done():
        return Check("policy_workers", False, f"starting {content.workers} worker(s)")
    err = asyncio.CancelledError() if task.cancelled() else task.exception()
    if err is not None:
        return Check("policy_workers", False, type(err).__name__)
    return Check("policy_workers", True, f"{content.workers} worker(s) answered")


def cert_expiry(path: Path) -> datetime:
    """Expiry of the first (leaf) certificate in a PEM file."""
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(path.read_bytes())
    return cert.not_valid_after_utc


def check_certificate(expires: datetime | None, min_days: int) -> Check:
    if expires is None:
        return Check("tls", True, "no certificate configured")
    days = (expires - utcnow()).total_seconds() / 86400
    detail = f"expires {expires.isoformat()} ({days:.1f} days)"
    return Check("tls", days >= min_days, detail)


class _Forward:
    """Exposes another registry's metrics (the module-level one) through this one."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Any]:
        yield from self.registry.collect()


class OpsServer:
    """Serves the three routes; ``readiness`` supplies the checks of the owning process."""

    def __init__(self, listen: tuple[str, int], engine: AsyncEngine, readiness: Readiness):
        self.host, self.port = listen
        self.readiness = readiness
        self.collector = metrics.DatabaseCollector(engine)
        self.registry = CollectorRegistry()
        self.registry.register(_Forward(metrics.REGISTRY))
        self.registry.register(self.collector)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self._server: Any = None
        self._task: asyncio.Task[None] | None = None

    def app(self) -> Any:
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import JSONResponse, PlainTextResponse, Response
        from starlette.routing import Route

        exporter = make_asgi_app(self.registry)
        collector = self.collector

        class MetricsApp:
            """prometheus_client's ASGI app, after refreshing the database collector."""

            async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
                await collector.refresh()
                start: dict[str, Any] = {}

                async def sized(message: dict[str, Any]) -> None:
                    # The exporter sends one body without Content-Length; say it, so
                    # plain HTTP/1.1 clients need not parse chunked encoding.
                    if message["type"] == "http.response.start":
                        start.update(message)
                        return
                    body = message.get("body", b"")
                    headers = [*start.get("headers", []),
                               (b"content-length", str(len(body)).encode())]  # fmt: skip
                    await send({**start, "headers": headers})
                    await send(message)

                await exporter(scope, receive, sized)

        async def healthz(request: Request) -> Response:
            return PlainTextResponse("alive\n")

        async def readyz(request: Request) -> Response:
            checks = await self.readiness()
            ready = all(c.ok for c in checks)
            body = {"ready": ready, "checks": {c.name: [c.ok, c.detail] for c in checks}}
            return JSONResponse(body, status_code=200 if ready else 503)

        async def not_found(request: Request, exc: Exception) -> Response:
            return PlainTextResponse("try /metrics, /healthz or /readyz\n", status_code=404)

        routes = [
            Route("/healthz", healthz, methods=["GET", "HEAD"]),
            Route("/readyz", readyz, methods=["GET", "HEAD"]),
            Route("/metrics", MetricsApp(), methods=["GET", "HEAD"]),
        ]
        app = Starlette(routes=routes, exception_handlers={404: not_found})

        async def closing(scope: Any, receive: Any, send: Any) -> None:
            """Every answer closes the connection (scrapers and health checks reconnect;
            nothing idles on the ops port)."""

            async def with_close(message: MutableMapping[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    headers = [*message.get("headers", []), (b"connection", b"close")]
                    message = {**message, "headers": headers}
                await send(message)

            await app(scope, receive, with_close)

        return closing

    def _bind(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # The protocol number matters: asyncio sets TCP_NODELAY on accepted connections
        # only for sockets that say IPPROTO_TCP.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as err:
            sock.close()
            raise SettingsError(
                f"setting 'metrics.listen': cannot listen on {self.host}:{self.port}: "
                f"{(err.strerror or str(err)).lower()}"
            ) from None
        return sock

    async def start(self) -> None:
        import uvicorn

        from relay.uvicorn_hosted import HostedServer

        sock = self._bind()
        config = uvicorn.Config(
            self.app(), log_config=None, access_log=False, lifespan="off",
            server_header=False, proxy_headers=False, timeout_keep_alive=5,
        )  # fmt: skip
        server = HostedServer(config)  # the relay owns signals
        self._server = server
        self._task = asyncio.create_task(server.serve(sockets=[sock]), name="ops-http")
        while not server.started and not self._task.done():  # noqa: ASYNC110 - no event
            await asyncio.sleep(0.01)
        if not server.started:
            sock.close()
            await self._task
            raise SettingsError(f"setting 'metrics.listen': cannot serve on {self.host}")
        self.port = int(sock.getsockname()[1])
        log.info("ops.listening", host=self.host, port=self.port)

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._task), 5)
