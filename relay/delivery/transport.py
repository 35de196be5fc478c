"""How the worker hands a message on: the ``Transport`` seam, SMTP behind it, a mock.

The worker knows one call, ``await transport.deliver(envelope, data) -> Outcome``, and
``close()`` at the end (the shape of httpx's transports): where the bytes go, over what,
and how connections are kept is the transport's business. ``SmtpTransport`` is the real
one (routing by relay.delivery.route, the pool below); ``MockTransport`` records what it
was given and answers scripted outcomes, so tests drive the worker's retry and bounce
decisions against a real database without a mail server.

The SMTP transport sends one message to one recipient over aiosmtplib, reusing
connections. Connections are pooled per (host, port). A destination gets at most ``per_target``
connections at once: a burst of messages then queues for a connection that is already
open instead of opening one per message (which both wastes handshakes and looks like
abuse to the receiving server). A connection is reused after a transaction, including a
refused one (aiosmtplib sends RSET), and dropped after a transport error or a 421.

A pooled connection can have been closed by the server while idle; a send that fails on
such a connection before any reply is retried once on a fresh connection, so an idle
timeout on the far side never costs a retry interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

import aiosmtplib

from relay.delivery.route import RouteError, Router, Target

MAX_IDLE_SECONDS = 30.0
NO_TLS_SECONDS = 3600.0  # after a failed STARTTLS, plaintext to that host for this long
PER_TARGET = 10
_TRANSPORT_ERRORS = (TimeoutError, aiosmtplib.SMTPException, OSError)


@dataclass(frozen=True)
class Outcome:
    """What one delivery attempt came to: ``status`` is delivered|deferred|failed (the
    worker retries a deferral and bounces a failure), ``code``/``enhanced`` the far
    end's reply codes when there was a reply, ``detail`` its text (it may name the
    recipient: the worker scrubs it before logging)."""

    status: str  # delivered|deferred|failed
    code: int | None
    enhanced: str
    detail: str


@dataclass(frozen=True)
class Envelope:
    """The SMTP envelope of one delivery: our return path (``""``: the null sender of a
    notice) and the one recipient."""

    mail_from: str
    rcpt: str


class Transport(Protocol):
    """Hands one message to one recipient; never raises for the far end's trouble (a
    refusal, a lost connection, a DNS failure are Outcomes), only for our own bugs."""

    async def deliver(self, envelope: Envelope, data: bytes) -> Outcome: ...

    async def close(self) -> None:
        """Release what the transport holds (pooled connections); called once, last."""


def _enhanced(message: str) -> str:
    first = message.split(" ", 1)[0] if message else ""
    parts = first.split(".")
    return first if len(parts) == 3 and all(p.isdigit() for p in parts) else ""


class Pool:
    def __init__(self, helo: str, timeout: float, *, per_target: int = PER_TARGET) -> None:
        self.helo = helo
        self.timeout = timeout
        self.per_target = max(1, per_target)
        self._idle: dict[tuple[str, int], list[tuple[float, aiosmtplib.SMTP]]] = {}
        self._gates: dict[tuple[str, int], asyncio.Semaphore] = {}
        self._users: dict[tuple[str, int], int] = {}  # holders and waiters per gate
        self._closing: set[asyncio.Task[None]] = set()  # QUITs of pruned connections
        self._no_tls: dict[tuple[str, int], float] = {}  # failed STARTTLS: when
        self.opened = 0  # connections opened so far (metrics, tests)

    @contextlib.asynccontextmanager
    async def slot(self, t: Target) -> AsyncIterator[None]:
        """Hold one of the destination's connection slots for one transaction."""
        gate = self._gates.setdefault(t.key, asyncio.Semaphore(self.per_target))
        self._users[t.key] = self._users.get(t.key, 0) + 1
        try:
            async with gate:
                yield
        finally:
            self._users[t.key] -= 1
            if not self._users[t.key]:  # direct MX meets many hosts: keep no empty gates
                del self._users[t.key], self._gates[t.key]

    def _client(self, t: Target, *, start_tls: bool | None) -> aiosmtplib.SMTP:
        return aiosmtplib.SMTP(
            hostname=t.host,
            port=t.port,
            local_hostname=self.helo,
            timeout=self.timeout,
            use_tls=t.tls == "implicit",
            start_tls=start_tls,
            validate_certs=t.tls in ("starttls", "implicit"),
        )

    async def _connect(self, t: Target) -> aiosmtplib.SMTP:
        if t.tls == "opportunistic":
            client = await self._opportunistic(t)
        else:
            client = self._client(t, start_tls=t.tls == "starttls")
            await client.connect()
        self.opened += 1
        if t.username:
            try:
                await client.login(t.username, t.password)
            except BaseException:
                await _quit(client)
                raise
        return client

    async def _opportunistic(self, t: Target) -> aiosmtplib.SMTP:
        """STARTTLS when offered; when the handshake fails, plaintext (RFC 3207 leaves
        that to the client, and Postfix's ``may`` level does the same) rather than
        deferring a message for days over a broken certificate setup."""
        client = self._client(t, start_tls=False)
        await client.connect()
        broken_since = self._no_tls.get(t.key)
        if broken_since is not None and time.monotonic() - broken_since < NO_TLS_SECONDS:
            return client
        try:
            await client.ehlo()
            if not client.supports_extension("starttls"):
                return client
            await client.starttls()
        except (ssl.SSLError, aiosmtplib.SMTPException, OSError, TimeoutError):
            await _quit(client)
            self._no_tls[t.key] = time.monotonic()
            client = self._client(t, start_tls=False)
            await client.connect()
        return client

    async def acquire(self, t: Target) -> tuple[aiosmtplib.SMTP, bool]:
        """A connection to ``t`` and whether it was reused from the idle list."""
        idle = self._idle.get(t.key, [])
        while idle:
            since, client = idle.pop()
            if client.is_connected and time.monotonic() - since < MAX_IDLE_SECONDS:
                return client, True
            await _quit(client)
        return await self._connect(t), False

    async def release(self, t: Target, client: aiosmtplib.SMTP, *, reusable: bool) -> None:
        idle = self._idle.setdefault(t.key, [])
        if reusable and client.is_connected and len(idle) < self.per_target:
            idle.append((time.monotonic(), client))
        else:
            await _quit(client)

    def prune(self) -> None:
        """Close connections idle too long: holding them open is impolite to the far
        end, which would time them out anyway. The QUITs run in the background: a slow
        far end must not hold up the caller (the worker's lease renewal)."""
        now = time.monotonic()
        stale: list[aiosmtplib.SMTP] = []
        for key, idle in list(self._idle.items()):
            stale.extend(c for since, c in idle if now - since >= MAX_IDLE_SECONDS)
            idle[:] = [(since, c) for since, c in idle if now - since < MAX_IDLE_SECONDS]
            if not idle:
                del self._idle[key]
        for key, since in list(self._no_tls.items()):
            if now - since >= NO_TLS_SECONDS:
                del self._no_tls[key]
        if stale:
            task = asyncio.create_task(_quit_all(stale))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        clients = [c for idle in self._idle.values() for _, c in idle]
        self._idle.clear()
        await asyncio.gather(_quit_all(clients), *self._closing)


async def _quit_all(clients: list[aiosmtplib.SMTP]) -> None:
    await asyncio.gather(*(_quit(c) for c in clients))


async def _quit(client: aiosmtplib.SMTP) -> None:
    with contextlib.suppress(Exception):
        if client.is_connected:
            await asyncio.wait_for(client.quit(), 5)
    with contextlib.suppress(Exception):
        client.close()


async def send(router: Router, pool: Pool, mail_from: str, rcpt: str, data: bytes) -> Outcome:
    """Try each target in order; stop at the first delivery or permanent refusal.

    A temporary refusal or transport error moves on to the next target (the next MX, as
    RFC 5321 5.1 asks); the last temporary outcome is what the worker records.
    """
    try:
        targets = await router.targets(rcpt)
    except RouteError as err:
        return Outcome("failed" if err.permanent else "deferred", None, err.enhanced, str(err))
    last = Outcome("deferred", None, "4.4.1", "no mail exchanger answered")
    for target in targets:
        async with pool.slot(target):
            outcome = await _transaction(pool, target, mail_from, rcpt, data)
        if outcome.status != "deferred":
            return outcome
        last = outcome
    return last


async def _transaction(
    pool: Pool, target: Target, mail_from: str, rcpt: str, data: bytes
) -> Outcome:
    for _ in range(2):  # the second round only after a stale pooled connection
        try:
            client, reused = await pool.acquire(target)
        except _TRANSPORT_ERRORS as err:
            return Outcome("deferred", None, "4.4.1", f"connection failed: {type(err).__name__}")
        try:
            await client.sendmail(mail_from, [rcpt], data, mail_options=_options(mail_from, rcpt))
        except aiosmtplib.SMTPNotSupported:
            # RFC 6531 3.5: an address that needs SMTPUTF8 cannot go to a server without it.
            await pool.release(target, client, reusable=True)
            return Outcome("failed", None, "5.6.7", "the server does not support SMTPUTF8")
        except ValueError as err:  # an address aiosmtplib refuses to put on the wire
            await pool.release(target, client, reusable=True)
            return Outcome("failed", None, "5.1.3", f"unusable address: {type(err).__name__}")
        except aiosmtplib.SMTPRecipientsRefused as err:
            refused = err.recipients[0]
            await pool.release(target, client, reusable=refused.code != 421)
            return _from_response(refused.code, refused.message)
        except aiosmtplib.SMTPResponseException as err:
            await pool.release(target, client, reusable=err.code != 421)
            if reused and err.code == 421:
                continue  # the server timed the idle connection out
            return _from_response(err.code, err.message)
        except _TRANSPORT_ERRORS as err:
            await pool.release(target, client, reusable=False)
            if reused and isinstance(err, ConnectionError):
                continue
            return Outcome("deferred", None, "4.4.2", f"connection lost: {type(err).__name__}")
        await pool.release(target, client, reusable=True)
        return Outcome("delivered", 250, "2.0.0", f"accepted by {target.hostname or target.host}")
    return Outcome("deferred", None, "4.4.2", "connection lost")


def _options(mail_from: str, rcpt: str) -> list[str]:
    return [] if mail_from.isascii() and rcpt.isascii() else ["SMTPUTF8"]


def _from_response(code: int, message: str) -> Outcome:
    status = "failed" if code >= 500 else "deferred"
    return Outcome(status, code, _enhanced(message), f"{code} {message}"[:500])


class SmtpTransport:
    """The real transport: targets from the router, one pooled SMTP transaction each.

    Idle pooled connections are closed in the background every ``prune_every`` seconds
    (a far end times them out anyway; holding them is impolite), from the first delivery
    until ``close()``.
    """

    def __init__(self, router: Router, pool: Pool, *, prune_every: float = 10.0) -> None:
        self.router = router
        self.pool = pool
        self.prune_every = prune_every
        self._pruner: asyncio.Task[None] | None = None

    async def deliver(self, envelope: Envelope, data: bytes) -> Outcome:
        if self._pruner is None:
            self._pruner = asyncio.create_task(self._prune(), name="delivery-pool-prune")
        return await send(self.router, self.pool, envelope.mail_from, envelope.rcpt, data)

    async def _prune(self) -> None:
        while True:
            await asyncio.sleep(self.prune_every)
            self.pool.prune()

    async def close(self) -> None:
        if self._pruner is not None:
            self._pruner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pruner
        await self.pool.close()


Script = Callable[[Envelope, bytes], "Outcome | Exception"]


class MockTransport:
    """A transport for tests: records every ``(envelope, data)`` it is given and answers
    from a script: a list of outcomes (one per delivery, the last repeated) or a function
    of the delivery. An Exception in the script is raised, as a bug in a transport
    would be, so the worker's own error path can be driven too."""

    def __init__(self, script: Iterable[Outcome | Exception] | Script) -> None:
        self.sent: list[tuple[Envelope, bytes]] = []
        self.closed = False
        self._fn: Script | None = script if callable(script) else None
        self._left: list[Outcome | Exception] = [] if callable(script) else list(script)
        if self._fn is None and not self._left:
            raise ValueError("MockTransport needs at least one scripted outcome")

    async def deliver(self, envelope: Envelope, data: bytes) -> Outcome:
        self.sent.append((envelope, data))
        if self._fn is not None:
            answer = self._fn(envelope, data)
        else:
            answer = self._left.pop(0) if len(self._left) > 1 else self._left[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def close(self) -> None:
        self.closed = True


def smtp_transport(router: Router, helo: str, timeout: float, concurrency: int) -> SmtpTransport:
    """The SMTP transport with the pool sized as the worker's settings say."""
    return SmtpTransport(router, Pool(helo, timeout, per_target=min(concurrency, PER_TARGET)))
