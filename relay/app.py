"""The composition root: every long-running part of a relay process is built here.

``build(settings, roles)`` makes an ``App`` holding the parts the roles need: the
database engine, the group committer, the delivery worker and its transport, the SMTP
listener with its gate and certificate, the policy pool, the ops HTTP server (/metrics,
/healthz, /readyz), the API, and `relay worker` child processes. ``relay serve``,
``relay worker`` and ``relay api serve`` are this one object with different roles;
relay.service.Relay is the same object with the parts tests choose (``Parts``).

Start-up order matters: the ops server first (so /readyz says why while starting), the
schema (so RCPT never meets a missing table), the commit writer, the worker, the
listener last, then the API; ``stop()`` runs the other way and lets open SMTP
transactions and in-flight deliveries finish within ``relay.shutdown_grace``.

Signals are installed in one place, ``install_signals``: ``run(app)`` (every serving
command) and `relay sink serve` use it. SIGTERM/SIGINT drain and exit 0; SIGHUP reloads
the TLS certificate and key, so a renewed certificate needs no restart (new connections
get it, open ones keep theirs; a bad file is logged and the old certificate stays).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import structlog

from relay import malloc
from relay.bounces_in import SignedBounces
from relay.db import create_engine
from relay.db.migrate import upgrade
from relay.delivery.route import Router, make_resolver
from relay.delivery.transport import Transport, smtp_transport
from relay.delivery.worker import DeliveryWorker, Signer
from relay.health import Check, OpsServer, check_certificate, check_database, check_policy_workers
from relay.log import set_hash_key
from relay.pipeline import Authenticator, Pipeline, Policy, registered_sender
from relay.policy_pool import Budget, PolicyRunner
from relay.settings import Settings, SettingsError
from relay.smtp.edge import listen
from relay.smtp.gate import ConnectionGate, Limits
from relay.smtp.handler import RelayHandler
from relay.smtp.listener import Listener
from relay.smtp.postmaster import OpsMailbox
from relay.smtp.tls import Certificate
from relay.store import secrets_store
from relay.store.commit import GroupCommitter

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from relay.acceptors import AcceptorProcesses
    from relay.api.server import ApiServer
    from relay.supervisor import WorkerProcesses

# The start/stop lines keep the logger name they always had (log filters know it).
log = structlog.get_logger("relay.service")


@dataclass(frozen=True)
class Roles:
    """What this process does: accept SMTP, deliver (in this process, or in
    ``worker_processes`` `relay worker` children), serve the HTTP API."""

    smtp: bool = True
    worker: bool = True
    api: bool = False
    worker_processes: int = 0

    @property
    def relay(self) -> bool:
        """Accepts or delivers mail: needs the committer, the keys and /readyz."""
        return self.smtp or self.worker


@dataclass(frozen=True)
class Parts:
    """The parts that are not read from settings alone: the policy (``"settings"``:
    load ``policy.file``), sender authentication, the DKIM signer, a shared engine, a
    delivery transport (default: SMTP per ``delivery``). Tests supply their own."""

    policy: Policy | Literal["settings"] | None = "settings"
    authenticator: Authenticator = registered_sender
    signer: Signer | None = None
    engine: AsyncEngine | None = None
    transport: Transport | None = None


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


def build(settings: Settings, roles: Roles, *, config: str | None = None) -> App:
    """The production process: authentication and DKIM signing as the settings say
    (relay.wiring); ``config`` is the settings file `relay worker` children read."""
    parts = Parts()
    if roles.relay:
        from relay.wiring import auth_parts

        parts = Parts(**auth_parts(settings))
    return App(settings, roles, parts, config=config)


class App:
    """The parts of one process, started and stopped in order (see the module text)."""

    def __init__(
        self, settings: Settings, roles: Roles, parts: Parts, *, config: str | None = None
    ) -> None:
        self.settings = settings
        self.roles = roles
        self.parts = parts
        s = settings
        self.engine = parts.engine or create_engine(
            s.database.url, pool_size=s.database.pool_size
        )
        self._own_engine = parts.engine is None
        self.committer = GroupCommitter(self.engine, max_group=s.database.group_commit_max)
        self.gate = ConnectionGate(Limits.from_settings(s.smtp))
        self.certificate = Certificate(s)
        self.worker: DeliveryWorker | None = None
        if roles.worker:
            transport = parts.transport or smtp_transport(
                Router(s.delivery, make_resolver(s.dns)),
                s.relay.helo_name,
                s.delivery.timeout.total_seconds(),
                s.delivery.concurrency,
            )
            self.worker = DeliveryWorker(
                s, self.engine, transport, signer=parts.signer, wake=self.committer.committed
            )
        self.api: ApiServer | None = None
        if roles.api:
            self.with_api()
        self.processes: WorkerProcesses | None = None
        if roles.worker_processes:
            from relay.supervisor import WorkerProcesses

            self.processes = WorkerProcesses(roles.worker_processes, config)
        self.acceptors: AcceptorProcesses | None = None
        if roles.smtp and s.smtp.acceptors > 1:
            from relay.acceptors import AcceptorProcesses

            self.acceptors = AcceptorProcesses(s.smtp.acceptors - 1, config)
        self.ops: OpsServer | None = None
        self.server: Listener | None = None
        self.handler: RelayHandler | None = None
        self.runner: PolicyRunner | None = None
        self._worker_task: asyncio.Task[None] | None = None
        self.stopping = False

    def with_api(self) -> App:
        """Add the HTTP API (checks ``api.*`` now: bad tokens never start a process)."""
        from relay.api.server import ApiServer

        if self.api is None:
            self.api = ApiServer(self.settings, self.engine)
        return self

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        s = self.settings
        if self.processes is not None:
            await self.processes.start()
        # The ops server first, so /healthz answers (and /readyz says why) during start.
        if self.roles.relay and s.metrics.listen:
            self.ops = OpsServer(s.metrics.host_port, self.engine, self.readiness)
            await self.ops.start()
        try:
            await upgrade(self.engine)
            if self.roles.relay:
                await self._start_relay()
        except BaseException:
            if self.ops is not None:
                await self.ops.stop()
            if self.processes is not None:
                await self.processes.stop()
            raise
        if self.api is not None:
            try:
                await self.api.start()
            except BaseException:
                await self.stop()
                raise

    async def _start_relay(self) -> None:
        s = self.settings
        malloc.tune()  # memory of a large message goes back to the system (relay.malloc)
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
        policy = load_policy(s) if isinstance(self.parts.policy, str) else self.parts.policy
        self.runner = policy if isinstance(policy, PolicyRunner) else None
        if self.runner is not None and self.roles.smtp:
            await self.runner.start()  # worker processes loaded before the first message
        self.committer.start()
        if self.worker is not None:
            self._worker_task = asyncio.create_task(self.worker.run(), name="delivery-worker")
        if self.roles.smtp:
            pipeline = Pipeline(
                s,
                self.engine,
                self.committer,
                policy,
                verp_key=verp_key,
                authenticator=self.parts.authenticator,
            )
            bounces = SignedBounces(s, self.engine, self.committer, verp_key, pipeline.content)
            ops = OpsMailbox(s, self.committer, verp_key, pipeline.content)
            if not s.relay.postmaster:
                log.warning("relay.postmaster.unset", effect="postmaster/abuse mail archived only")
            self.handler = RelayHandler(s, pipeline, bounces, ops)
            self.certificate.load()
            self.server = await listen(s, self.handler, self.gate, self.certificate)
            if self.acceptors is not None:  # after our bind: a port in use stops us first
                await self.acceptors.start()
        log.info(
            "relay.started",
            smtp=self.roles.smtp,
            worker=self.roles.worker,
            port=self.port if self.server else None,
        )

    def reload_tls(self) -> bool:
        """SIGHUP: new connections get the certificate now on disk (relay.smtp.tls)."""
        return self.certificate.reload()

    async def readiness(self) -> list[Check]:
        """What /readyz reports: traffic should come here only if all are true."""
        checks = [Check("running", not self.stopping, "draining" if self.stopping else "")]
        checks.append(await check_database(self.engine))
        if self.roles.smtp:
            bound = self.server is not None and self.server.is_serving()
            checks.append(Check("listener", bound, f"port {self.port}" if bound else "not bound"))
            checks.append(
                check_certificate(self.certificate.expires, self.settings.metrics.cert_min_days)
            )
            if self.runner is not None:  # set before the listener binds
                checks.append(await check_policy_workers(self.runner))
        if self.roles.worker:
            alive = self._worker_task is not None and not self._worker_task.done()
            checks.append(Check("worker", alive))
        return checks

    async def stop(self, grace: float | None = None) -> None:
        """Stop the API, stop listening, let open transactions and in-flight deliveries
        finish within ``grace`` seconds (default ``relay.shutdown_grace``), then close
        everything; `relay worker` children last."""
        try:
            if self.api is not None:
                await self.api.stop()  # raises what stopped uvicorn, if it stopped itself
        finally:
            try:
                if self.roles.relay:
                    await self._stop_relay(grace)
                elif self._own_engine:
                    await self.engine.dispose()
            finally:
                if self.processes is not None:
                    await self.processes.stop()

    async def _stop_acceptors(self, grace: float) -> None:
        """SIGTERM the acceptor children; they drain their own sessions meanwhile."""
        if self.acceptors is not None:
            await self.acceptors.stop(grace)

    async def _stop_relay(self, grace: float | None) -> None:
        if grace is None:
            grace = self.settings.relay.shutdown_grace.total_seconds()
        self.stopping = True
        log.info("relay.stopping", grace=grace, sessions=self.gate.open)
        if self.handler is not None:
            self.handler.accepting = False
        if self.server is not None:
            self.server.close()  # new connections are refused from here on
        worker_stop = self._stop_worker(grace) if self.worker is not None else asyncio.sleep(0)
        aborted, _, _ = await asyncio.gather(
            self.gate.drain(grace), worker_stop, self._stop_acceptors(grace)
        )
        await self.committer.stop()
        if self.runner is not None:
            self.runner.close()
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


def install_signals(stop: asyncio.Event, reload: Callable[[], object] | None = None) -> None:
    """The process's signal handlers, set here and nowhere else: SIGTERM and SIGINT set
    ``stop``; SIGHUP calls ``reload`` (the certificate) when given. uvicorn is kept from
    installing its own (relay.uvicorn_hosted)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if reload is not None:
        loop.add_signal_handler(signal.SIGHUP, reload)


async def run(app: App) -> None:
    """Start ``app``, serve until SIGTERM or SIGINT (or until the API stops by itself),
    then shut down gracefully."""
    stop = asyncio.Event()
    install_signals(stop, app.reload_tls if app.roles.relay else None)
    await app.start()
    stopped = asyncio.create_task(stop.wait())
    waiters: set[asyncio.Future[Any]] = {stopped}
    if app.api is not None and app.api.done is not None:
        waiters.add(app.api.done)
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        await app.stop()
