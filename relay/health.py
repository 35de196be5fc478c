"""The ops HTTP endpoint: ``/metrics``, ``/healthz``, ``/readyz`` on ``metrics.listen``.

A deliberately tiny HTTP/1.1 responder on the relay's own event loop rather than
prometheus-client's threaded server: readiness checks and the database collector are
async and need the loop's engine, and three GET routes do not justify a web framework in
the SMTP process. Every response closes the connection.

``/healthz`` answers 200 while the process runs its loop (liveness: restart if not).
``/readyz`` answers 200 only when this process should get traffic: database reachable,
SMTP listener bound (when it runs one), TLS certificate not about to expire, not draining.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
import structlog
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from relay import metrics
from relay.db.schema import utcnow

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


class OpsServer:
    """Serves the three routes; ``readiness`` supplies the checks of the owning process."""

    def __init__(self, listen: tuple[str, int], engine: AsyncEngine, readiness: Readiness):
        self.host, self.port = listen
        self.readiness = readiness
        self.collector = metrics.DatabaseCollector(engine)
        self.registry = CollectorRegistry()
        self.registry.register(self.collector)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        log.info("ops.listening", host=self.host, port=self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(30):
                head = await reader.readuntil(b"\r\n\r\n")
                status, ctype, body = await self._route(head)
                writer.write(
                    f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass
        finally:
            writer.close()

    async def _route(self, head: bytes) -> tuple[str, str, bytes]:
        if len(head) > MAX_REQUEST:
            return "431 Request Header Fields Too Large", "text/plain", b"too large\n"
        parts = head.split(b"\r\n", 1)[0].split()
        if len(parts) != 3 or parts[0] not in (b"GET", b"HEAD"):
            return "405 Method Not Allowed", "text/plain", b"GET only\n"
        path = parts[1].split(b"?", 1)[0]
        if path == b"/healthz":
            return "200 OK", "text/plain", b"alive\n"
        if path == b"/readyz":
            checks = await self.readiness()
            ready = all(c.ok for c in checks)
            body = {"ready": ready, "checks": {c.name: [c.ok, c.detail] for c in checks}}
            status = "200 OK" if ready else "503 Service Unavailable"
            return status, "application/json", json.dumps(body).encode() + b"\n"
        if path == b"/metrics":
            await self.collector.refresh()
            body = generate_latest(metrics.REGISTRY) + generate_latest(self.registry)
            return "200 OK", CONTENT_TYPE_LATEST, body
        return "404 Not Found", "text/plain", b"try /metrics, /healthz or /readyz\n"
