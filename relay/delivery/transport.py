"""Sending one message to one recipient over aiosmtplib, reusing connections.

Connections are pooled per (host, port): a busy destination gets several, each reused
for the next message after a successful transaction; a connection that errs is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

import aiosmtplib

from relay.delivery.route import RouteError, Router, Target

MAX_IDLE_SECONDS = 30.0
MAX_IDLE_PER_TARGET = 8


@dataclass(frozen=True)
class Outcome:
    status: str  # delivered|deferred|failed
    code: int | None
    enhanced: str
    detail: str


def _enhanced(message: str) -> str:
    first = message.split(" ", 1)[0] if message else ""
    parts = first.split(".")
    return first if len(parts) == 3 and all(p.isdigit() for p in parts) else ""


class Pool:
    def __init__(self, helo: str, timeout: float) -> None:
        self.helo = helo
        self.timeout = timeout
        self._idle: dict[tuple[str, int], list[tuple[float, aiosmtplib.SMTP]]] = {}

    async def _connect(self, t: Target) -> aiosmtplib.SMTP:
        start_tls: bool | None = {"none": False, "starttls": True, "implicit": False}.get(t.tls)
        client = aiosmtplib.SMTP(
            hostname=t.host,
            port=t.port,
            local_hostname=self.helo,
            timeout=self.timeout,
            use_tls=t.tls == "implicit",
            start_tls=start_tls,
            validate_certs=t.tls in ("starttls", "implicit"),
        )
        await client.connect()
        if t.username:
            await client.login(t.username, t.password)
        return client

    async def acquire(self, t: Target) -> aiosmtplib.SMTP:
        idle = self._idle.get(t.key, [])
        while idle:
            since, client = idle.pop()
            if client.is_connected and time.monotonic() - since < MAX_IDLE_SECONDS:
                return client
            await _quit(client)
        return await self._connect(t)

    async def release(self, t: Target, client: aiosmtplib.SMTP, *, reusable: bool) -> None:
        idle = self._idle.setdefault(t.key, [])
        if reusable and client.is_connected and len(idle) < MAX_IDLE_PER_TARGET:
            idle.append((time.monotonic(), client))
        else:
            await _quit(client)

    async def close(self) -> None:
        clients = [c for idle in self._idle.values() for _, c in idle]
        self._idle.clear()
        await asyncio.gather(*(_quit(c) for c in clients))


async def _quit(client: aiosmtplib.SMTP) -> None:
    with contextlib.suppress(Exception):
        if client.is_connected:
            await asyncio.wait_for(client.quit(), 5)
    with contextlib.suppress(Exception):
        client.close()


async def send(router: Router, pool: Pool, mail_from: str, rcpt: str, data: bytes) -> Outcome:
    try:
        targets = await router.targets(rcpt)
    except RouteError as err:
        return Outcome("failed" if err.permanent else "deferred", None, err.enhanced, str(err))
    last = Outcome("deferred", None, "4.4.1", "no mail exchanger answered")
    for target in targets:
        try:
            client = await pool.acquire(target)
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as err:
            last = Outcome("deferred", None, "4.4.1", f"connection failed: {type(err).__name__}")
            continue
        try:
            await client.sendmail(mail_from, [rcpt], data)
        except aiosmtplib.SMTPRecipientsRefused as err:
            refused = err.recipients[0]
            await pool.release(target, client, reusable=True)
            return _from_response(refused.code, refused.message)
        except aiosmtplib.SMTPResponseException as err:
            await pool.release(target, client, reusable=False)
            outcome = _from_response(err.code, err.message)
            if outcome.status == "failed":
                return outcome
            last = outcome
            continue
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as err:
            await pool.release(target, client, reusable=False)
            last = Outcome("deferred", None, "4.4.2", f"connection lost: {type(err).__name__}")
            continue
        await pool.release(target, client, reusable=True)
        return Outcome("delivered", 250, "2.0.0", f"accepted by {target.hostname or target.host}")
    return last


def _from_response(code: int, message: str) -> Outcome:
    status = "failed" if code >= 500 else "deferred"
    return Outcome(status, code, _enhanced(message), f"{code} {message}"[:500])
