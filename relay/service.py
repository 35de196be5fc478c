"""Assembling and running the relay: SMTP listener and delivery worker on one loop.

Start-up order matters: schema first (so RCPT never meets a missing table), then the
commit writer, then the worker, and the listener last; shutdown runs the other way and
lets open SMTP transactions and in-flight deliveries finish within a bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import ssl
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from relay import secrets_store
from relay.bounces_in import SignedBounces
from relay.commit import GroupCommitter
from relay.db import create_engine
from relay.db.migrate import upgrade
from relay.delivery.route import Router, make_resolver
from relay.delivery.worker import DeliveryWorker, Signer
from relay.log import set_hash_key
from relay.pipeline import Authenticator, Pipeline, registered_sender
from relay.policy_pool import PolicyRunner
from relay.settings import Settings, SettingsError
from relay.smtp.handler import RelayHandler
from relay.smtp.server import ConnectionGate, RelaySMTP

log = structlog.get_logger("relay.service")


def load_policy(settings: Settings) -> PolicyRunner | None:
    """Load (and so validate) the policy at start-up: a bad file stops the relay."""
    if not settings.policy.enabled:
        return None
    from relay.policy import PolicyEngine, PolicyError

    path = settings.policy.file
    try:
        engine = PolicyEngine.load(path)
    except (PolicyError, OSError) as err:
        raise SettingsError(f"policy file {path or '(default)'}: {err}") from None
    return PolicyRunner(engine, workers=settings.policy.workers, path=path)


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    smtp = settings.smtp
    if not smtp.tls_cert:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        ctx.load_cert_chain(str(smtp.tls_cert), str(smtp.tls_key) if smtp.tls_key else None)
    except (OSError, ssl.SSLError) as err:
        raise SettingsError(f"setting 'smtp.tls_cert': cannot load certificate: {err}") from None
    return ctx


class Relay:
    def __init__(
        self,
        settings: Settings,
        *,
        smtp: bool = True,
        worker: bool = True,
        policy: PolicyRunner | str | None = "settings",
        authenticator: Authenticator | None = None,
        signer: Signer | None = None,
        engine: AsyncEngine | None = None,
    ) -> None:
        self.settings = settings
        self.run_smtp = smtp
        self.run_worker = worker
        self._policy = policy
        self._authenticator = authenticator
        self._signer = signer
        self.engine = engine or create_engine(
            settings.database.url, pool_size=settings.database.pool_size
        )
        self._own_engine = engine is None
        self.committer = GroupCommitter(self.engine, max_group=settings.database.group_commit_max)
        self.server: asyncio.Server | None = None
        self.worker: DeliveryWorker | None = None
        self.handler: RelayHandler | None = None
        self._worker_task: asyncio.Task[None] | None = None
        self._runner: PolicyRunner | None = None

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        s = self.settings
        await upgrade(self.engine)
        verp_key = (
            bytes.fromhex(s.bounce.secret)
            if s.bounce.secret
            else await secrets_store.get_or_create(self.engine, "verp_key")
        )
        log_key = (
            s.log.hash_key.encode()
            if s.log.hash_key
            else await secrets_store.get_or_create(self.engine, "log_key")
        )
        set_hash_key(log_key)
        policy = load_policy(s) if self._policy == "settings" else self._policy
        self._runner = policy if isinstance(policy, PolicyRunner) else None
        self.committer.start()
        resolver = make_resolver(s.dns)
        if self.run_worker:
            self.worker = DeliveryWorker(
                s,
                self.engine,
                Router(s.delivery, resolver),
                signer=self._signer,
                wake=self.committer.committed,
            )
            self._worker_task = asyncio.create_task(self.worker.run(), name="delivery-worker")
        if self.run_smtp:
            pipeline = Pipeline(
                s,
                self.engine,
                self.committer,
                policy,  # type: ignore[arg-type]
                verp_key=verp_key,
                authenticator=self._authenticator or registered_sender,
            )
            bounces = SignedBounces(s, self.engine, self.committer, verp_key)
            self.handler = RelayHandler(s, pipeline, bounces)
            await self._listen()
        log.info(
            "relay.started",
            smtp=self.run_smtp,
            worker=self.run_worker,
            port=self.port if self.server else None,
        )

    async def _listen(self) -> None:
        s = self.settings
        host, port = s.smtp.host_port
        gate = ConnectionGate(s.smtp.max_connections)
        tls = tls_context(s)

        def factory() -> RelaySMTP:
            return RelaySMTP(
                self.handler,
                gate=gate,
                data_size_limit=s.smtp.max_message_size,
                hostname=s.relay.helo_name,
                ident="ESMTP relay",
                tls_context=tls,
                require_starttls=False,
                timeout=s.smtp.timeout.total_seconds(),
                decode_data=False,
                enable_SMTPUTF8=False,
                loop=asyncio.get_running_loop(),
            )

        self.server = await asyncio.get_running_loop().create_server(factory, host, port)

    async def stop(self, grace: float = 30.0) -> None:
        if self.handler is not None:
            self.handler.accepting = False
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.server.wait_closed(), grace)
        await self.committer.stop()
        if self.worker is not None:
            await self.worker.stop(grace)
        if self._worker_task is not None:
            self._worker_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker_task
        if self._runner is not None:
            self._runner.close()
        if self._own_engine:
            await self.engine.dispose()
        log.info("relay.stopped")


async def run_forever(relay: Relay, **_: Any) -> None:
    """Run until SIGTERM or SIGINT, then shut down gracefully."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await relay.start()
    try:
        await stop.wait()
    finally:
        await relay.stop()
