"""Assembling and running the relay: SMTP listener and delivery worker on one loop.

Start-up order matters: schema first (so RCPT never meets a missing table), then the
commit writer, then the worker, and the listener last; shutdown runs the other way and
lets open SMTP transactions and in-flight deliveries finish within ``relay.shutdown_grace``.

Signals (``run_forever``): SIGTERM/SIGINT drain and exit 0; SIGHUP reloads the TLS
certificate and key, so a renewed certificate needs no restart (new connections get it,
open ones keep theirs; a bad file is logged and the old certificate stays).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import ssl
from datetime import datetime
from typing import Any, Literal

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from relay import malloc, metrics
from relay.bounces_in import SignedBounces
from relay.db import create_engine
from relay.db.migrate import upgrade
from relay.delivery.route import Router, make_resolver
from relay.delivery.transport import smtp_transport
from relay.delivery.worker import DeliveryWorker, Signer
from relay.health import Check, OpsServer, cert_expiry, check_certificate, check_database
from relay.log import set_hash_key
from relay.pipeline import Authenticator, Pipeline, Policy, registered_sender
from relay.policy_pool import Budget, PolicyRunner
from relay.settings import Settings, SettingsError
from relay.smtp.fdlimit import ensure_fd_limit
from relay.smtp.gate import ConnectionGate, Limits
from relay.smtp.handler import RelayHandler
from relay.smtp.listener import Listener
from relay.smtp.postmaster import OpsMailbox
from relay.smtp.proxy import parse_networks
from relay.smtp.server import RelaySMTP
from relay.store import secrets_store
from relay.store.commit import GroupCommitter

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
    return PolicyRunner(
        engine,
        workers=settings.policy.workers,
        path=path,
        budget=Budget.of(settings.message),
        max_pixels=settings.message.max_image_pixels,
    )


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
        policy: Policy | Literal["settings"] | None = "settings",
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
        self.server: Listener | None = None
        self.worker: DeliveryWorker | None = None
        self.handler: RelayHandler | None = None
        self._worker_task: asyncio.Task[None] | None = None
        self._runner: PolicyRunner | None = None
        self.gate = ConnectionGate(Limits.from_settings(settings.smtp))
        self.ops: OpsServer | None = None
        self.tls: ssl.SSLContext | None = None
        self.tls_expires: datetime | None = None
        self.stopping = False

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        s = self.settings
        if s.metrics.listen:  # first, so /healthz answers (and /readyz says why) during start
            self.ops = OpsServer(s.metrics.host_port, self.engine, self.readiness)
            await self.ops.start()
        try:
            await self._start()
        except BaseException:
            if self.ops is not None:
                await self.ops.stop()
            raise

    async def _start(self) -> None:
        s = self.settings
        malloc.tune()  # memory of a large message goes back to the system (relay.malloc)
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
        policy = load_policy(s) if isinstance(self._policy, str) else self._policy
        self._runner = policy if isinstance(policy, PolicyRunner) else None
        if self._runner is not None:
            await self._runner.start()  # worker processes loaded before the first message
        self.committer.start()
        resolver = make_resolver(s.dns)
        if self.run_worker:
            self.worker = DeliveryWorker(
                s,
                self.engine,
                smtp_transport(
                    Router(s.delivery, resolver),
                    s.relay.helo_name,
                    s.delivery.timeout.total_seconds(),
                    s.delivery.concurrency,
                ),
                signer=self._signer,
                wake=self.committer.committed,
            )
            self._worker_task = asyncio.create_task(self.worker.run(), name="delivery-worker")
        if self.run_smtp:
            pipeline = Pipeline(
                s,
                self.engine,
                self.committer,
                policy,
                verp_key=verp_key,
                authenticator=self._authenticator or registered_sender,
            )
            bounces = SignedBounces(s, self.engine, self.committer, verp_key, pipeline.content)
            ops = OpsMailbox(s, self.committer, verp_key, pipeline.content)
            if not s.relay.postmaster:
                log.warning("relay.postmaster.unset", effect="postmaster/abuse mail archived only")
            self.handler = RelayHandler(s, pipeline, bounces, ops)
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
        self._load_tls()
        ensure_fd_limit(s.smtp.max_connections)
        trusted = parse_networks(s.smtp.proxy_networks)
        networks = trusted if s.smtp.proxy_protocol else None
        proxy_timeout = s.smtp.proxy_timeout.total_seconds() if networks is not None else None

        def factory() -> RelaySMTP:
            return RelaySMTP(
                self.handler,
                gate=self.gate,
                proxy_networks=networks,
                xforward_networks=trusted if s.smtp.xforward else None,
                proxy_protocol_timeout=proxy_timeout,
                data_size_limit=s.smtp.max_message_size,
                hostname=s.relay.helo_name,
                ident="ESMTP relay",
                tls_context=self.tls,  # read per connection: SIGHUP swaps it
                require_starttls=False,
                timeout=s.smtp.timeout.total_seconds(),  # the gate keeps time (relay.smtp.gate)
                decode_data=False,
                enable_SMTPUTF8=True,
                loop=asyncio.get_running_loop(),
            )

        # A deep accept queue: a burst of connections must reach the gate (which can evict
        # to make room), not wait in SYN retries the client sees as seconds of silence.
        # The listener screens each cheaply before a session exists (relay.smtp.listener).
        backlog = max(128, min(4096, s.smtp.max_connections))
        self.server = await Listener.start(
            factory, host, port, self.gate, backlog=backlog,
            trusted=trusted if s.smtp.proxy_protocol or s.smtp.xforward else None,
        )  # fmt: skip

    def _load_tls(self) -> None:
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
        self.tls, self.tls_expires = ctx, expires
        metrics.TLS_EXPIRY.set(expires.timestamp())

    def reload_tls(self) -> bool:
        """SIGHUP: new connections get the certificate now on disk; keep the old on error."""
        if self.settings.smtp.tls_cert is None:
            log.info("tls.reload.skipped", reason="no certificate configured")
            return False
        try:
            self._load_tls()
        except SettingsError as err:
            metrics.TLS_RELOADS.labels(result="error").inc()
            log.error("tls.reload.failed", error=str(err))
            return False
        metrics.TLS_RELOADS.labels(result="ok").inc()
        log.info("tls.reloaded", expires=self.tls_expires.isoformat() if self.tls_expires else None)
        return True

    async def readiness(self) -> list[Check]:
        """What /readyz reports: traffic should come here only if all are true."""
        checks = [Check("running", not self.stopping, "draining" if self.stopping else "")]
        checks.append(await check_database(self.engine))
        if self.run_smtp:
            bound = self.server is not None and self.server.is_serving()
            checks.append(Check("listener", bound, f"port {self.port}" if bound else "not bound"))
            checks.append(check_certificate(self.tls_expires, self.settings.metrics.cert_min_days))
        if self.run_worker:
            alive = self._worker_task is not None and not self._worker_task.done()
            checks.append(Check("worker", alive))
        return checks

    async def stop(self, grace: float | None = None) -> None:
        """Stop listening, let open transactions and in-flight deliveries finish within
        ``grace`` seconds (default ``relay.shutdown_grace``), then close everything."""
        if grace is None:
            grace = self.settings.relay.shutdown_grace.total_seconds()
        self.stopping = True
        log.info("relay.stopping", grace=grace, sessions=self.gate.open)
        if self.handler is not None:
            self.handler.accepting = False
        if self.server is not None:
            self.server.close()  # new connections are refused from here on
        worker_stop = self._stop_worker(grace) if self.worker is not None else asyncio.sleep(0)
        aborted, _ = await asyncio.gather(self.gate.drain(grace), worker_stop)
        await self.committer.stop()
        if self._runner is not None:
            self._runner.close()
        if self.ops is not None:
            await self.ops.stop()
        if self._own_engine:
            await self.engine.dispose()
        log.info("relay.stopped", sessions_aborted=aborted)

    async def _stop_worker(self, grace: float) -> None:
        assert self.worker is not None
        await self.worker.stop(grace)
        if self._worker_task is not None:
            self._worker_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker_task


async def run_forever(relay: Relay, **_: Any) -> None:
    """Run until SIGTERM or SIGINT, then shut down gracefully; SIGHUP reloads TLS."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, relay.reload_tls)
    await relay.start()
    try:
        await stop.wait()
    finally:
        await relay.stop()
