"""The delivery worker: claim due rows, send, record, retry or bounce.

It runs in the relay process (woken by each commit) or alone (``relay worker``); several
workers share one PostgreSQL queue through leases and ``FOR UPDATE SKIP LOCKED``. A
worker renews the leases of what it is sending, so only a dead worker's rows are taken
over, and it changes a row only while it still holds the claim (``queue.held_by``).
A failure and its bounce notice are written in one transaction: never one without the
other, and never a notice about a notice or about automatic mail.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable
from datetime import timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from relay import metrics, queue
from relay.archive import last_hash
from relay.bounce import Original, explain, load_original, notice_entry
from relay.commit import lock_chain, write_entries
from relay.db import read_tx, write_tx
from relay.db.schema import deliveries, delivery_events, utcnow
from relay.delivery.route import Router
from relay.delivery.transport import PER_TARGET, Outcome, Pool, send
from relay.log import mask, scrub_addresses
from relay.settings import Settings

log = structlog.get_logger("relay.delivery")
Signer = Callable[[bytes], bytes]
RECORD_RETRIES = (0.2, 1.0, 3.0)  # pauses between attempts to record an outcome
RECORD_BATCH = 200  # outcomes per transaction at most


class DeliveryWorker:
    def __init__(
        self,
        settings: Settings,
        engine: AsyncEngine,
        router: Router,
        *,
        signer: Signer | None = None,
        wake: asyncio.Event | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.router = router
        self.signer = signer
        self.wake = wake or asyncio.Event()
        self.name = f"worker-{secrets.token_hex(4)}"
        d = settings.delivery
        self.pool = Pool(
            settings.relay.helo_name,
            d.timeout.total_seconds(),
            per_target=min(d.concurrency, PER_TARGET),
        )
        self._slots = asyncio.Semaphore(d.concurrency)
        self._running: set[asyncio.Task[None]] = set()
        self._held: set[int] = set()  # delivery ids we are sending: leases to renew
        self._renewer: asyncio.Task[None] | None = None
        self._recorder: asyncio.Task[None] | None = None
        self._attempts: asyncio.Queue[tuple[queue.Attempt, asyncio.Future[None]]] = asyncio.Queue()
        self._stopping = asyncio.Event()
        self._claiming = False  # the claim loop runs
        self._claim_done = asyncio.Event()

    async def run(self) -> None:
        self._renewer = asyncio.create_task(self._renew_leases(), name="delivery-leases")
        self._recorder = asyncio.create_task(self._record_batches(), name="delivery-record")
        helpers = (self._renewer, self._recorder)
        try:
            await self._claim_loop()
            await asyncio.gather(*helpers)  # until stop() has let the in-flight sends finish
        finally:
            for task in helpers:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*helpers, return_exceptions=True)

    async def _record_batches(self) -> None:
        """Write the outcomes that are waiting in one transaction, over and over: a
        batch forms by itself while the previous one commits (see queue.record_many)."""
        while True:
            batch = [await self._attempts.get()]
            while not self._attempts.empty() and len(batch) < RECORD_BATCH:
                batch.append(self._attempts.get_nowait())
            try:
                await queue.record_many(self.engine, [attempt for attempt, _ in batch])
            except Exception as err:  # each sender retries its own (_deliver_held)
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(err)
            else:
                for _, fut in batch:
                    if not fut.done():
                        fut.set_result(None)

    async def _save(self, attempt: queue.Attempt) -> None:
        if self._recorder is None or self._recorder.done():  # drain(), or not running
            await queue.record_many(self.engine, [attempt])
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._attempts.put_nowait((attempt, fut))
        await fut

    async def _renew_leases(self) -> None:
        """Renew the leases of in-flight sends every third of the lease, also while
        stop() waits for them to finish."""
        lease = self.settings.delivery.claim_lease
        every = min(max(lease.total_seconds() / 3, 0.05), 10.0)  # also the pruning tick
        while True:
            await asyncio.sleep(every)
            try:
                await queue.renew(self.engine, self.name, sorted(self._held), lease)
            except Exception as err:  # the next round tries again
                log.error("delivery.renew_failed", error=type(err).__name__)
            self.pool.prune()

    async def _claim_loop(self) -> None:
        self._claiming = True
        try:
            await self._claim_rounds()
        finally:
            self._claiming = False
            self._claim_done.set()

    async def _claim_rounds(self) -> None:
        d = self.settings.delivery
        while not self._stopping.is_set():
            # Clear before claiming: a commit that lands during the claim must wake the
            # next idle, not be forgotten until the poll interval runs out.
            self.wake.clear()
            free = d.concurrency - len(self._running)
            limit = min(free, d.batch)
            items = []
            if free > 0:
                try:
                    items = await queue.claim(
                        self.engine, self.name, limit=limit, lease=d.claim_lease
                    )
                except Exception as err:  # database trouble: keep the worker alive
                    log.error("delivery.claim_failed", error=type(err).__name__)
            full = free > 0 and len(items) == limit  # there may be more due right now
            # A row we are still sending comes back only if its lease lapsed (renewal
            # stalled behind a busy database): the claim renewed it; never send it twice.
            items = [item for item in items if item.id not in self._held]
            for item in items:
                self._held.add(item.id)
                task = asyncio.create_task(self._deliver(item))
                self._running.add(task)
                task.add_done_callback(self._running.discard)
            if not full:
                await self._idle(d.poll_interval.total_seconds())

    async def _idle(self, seconds: float) -> None:
        waiters = [
            asyncio.create_task(self.wake.wait()),
            asyncio.create_task(self._stopping.wait()),
        ]
        if self._running:
            waiters.append(
                asyncio.create_task(asyncio.wait(set(self._running), return_when="FIRST_COMPLETED"))
            )
        _, pending = await asyncio.wait(waiters, timeout=seconds, return_when="FIRST_COMPLETED")
        for p in pending:
            p.cancel()

    async def stop(self, grace: float = 30.0) -> None:
        """Stop claiming; let in-flight deliveries finish within ``grace`` seconds."""
        self._stopping.set()
        if self._claiming:
            # A claim in progress hands out rows after this point: wait for the loop to
            # end, so those sends are waited for below rather than orphaned.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._claim_done.wait(), grace)
        if self._running:
            _, pending = await asyncio.wait(set(self._running), timeout=grace)
            for task in pending:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*pending, return_exceptions=True)
        for helper in (self._renewer, self._recorder):
            if helper is not None:
                helper.cancel()
        await self.pool.close()

    async def drain(self, timeout: float = 30.0) -> None:
        """Deliver until nothing is due (tests and `relay worker --once`)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            items = await queue.claim(
                self.engine,
                self.name,
                limit=self.settings.delivery.batch,
                lease=self.settings.delivery.claim_lease,
            )
            if not items and not self._running:
                return
            await asyncio.gather(*(self._deliver(i) for i in items))

    async def _deliver(self, item: queue.Claimed) -> None:
        self._held.add(item.id)
        try:
            await self._deliver_held(item)
        finally:
            self._held.discard(item.id)

    async def _deliver_held(self, item: queue.Claimed) -> None:
        async with self._slots:
            try:
                data = await queue.message_bytes(self.engine, item.archive_id)
                if self.signer is not None:
                    data = self.signer(data)
                started = time.monotonic()
                outcome = await send(self.router, self.pool, item.mail_from, item.rcpt, data)
                metrics.observe_delivery_attempt(time.monotonic() - started, outcome.status)
            except Exception as err:
                log.error(
                    "delivery.internal_error",
                    delivery=item.id,
                    error=type(err).__name__,
                    exc_info=err,
                )
                outcome = Outcome("deferred", None, "4.3.0", "internal error")
            # Record what really happened, retrying a database blip: recording a sent
            # message as "internal error, retry" would deliver it twice.
            for pause in (*RECORD_RETRIES, None):
                try:
                    await self._record(item, outcome)
                    return
                except Exception as err:
                    log.error("delivery.record_failed", delivery=item.id, error=type(err).__name__)
                    if pause is None:
                        break
                    await asyncio.sleep(pause)
            # Still no database: the lease runs out and the row is tried again (the same
            # window as a crash between sending and recording).

    async def _record(self, item: queue.Claimed, outcome: Outcome) -> None:
        d = self.settings.delivery
        now = utcnow()
        if outcome.status == "deferred" and now - item.created_at >= d.give_up_after:
            outcome = Outcome(
                "failed", outcome.code, outcome.enhanced, "expired: " + outcome.detail
            )
        if outcome.status == "delivered":
            await self._save(
                queue.Attempt(item, "delivered", "delivered", outcome.code, outcome.detail)
            )
            log.info("delivery.delivered", delivery=item.id, attempts=item.attempts + 1)
        elif outcome.status == "deferred":
            delay = retry_delay(d.retry, item.attempts)
            await self._save(
                queue.Attempt(
                    item, "deferred", "deferred", outcome.code, outcome.detail, now + delay
                )
            )
            log.info(
                "delivery.deferred",
                delivery=item.id,
                code=outcome.code,
                retry_in=int(delay.total_seconds()),
                rcpt=mask(item.rcpt),
            )
        else:
            await self._fail(item, outcome)

    async def _fail(self, item: queue.Claimed, outcome: Outcome) -> None:
        """Mark failed and queue the notice in the same transaction: never one without the other."""
        now = utcnow()
        expired = outcome.detail.startswith("expired")
        entry = None
        if item.notify and item.mail_from:
            original = await self._original(item.archive_id)
            if original is not None:
                entry = notice_entry(
                    original,
                    reason=explain(
                        outcome.code,
                        outcome.enhanced,
                        expired=expired,
                        after=self.settings.delivery.give_up_after,
                    ),
                    domain=self.settings.relay.domain,
                    marketplace=self.settings.relay.marketplace,
                    now=now,
                )
        async with write_tx(self.engine) as conn:
            if entry is not None:
                # Chain lock before the row lock, the order SignedBounces.accept uses:
                # the other order can deadlock on PostgreSQL against an incoming DSN.
                await lock_chain(conn)
            result = await conn.execute(
                deliveries.update()
                .where(queue.held_by(item))
                .values(
                    status="failed",
                    attempts=item.attempts + 1,
                    claimed_by="",
                    claimed_until=None,
                    last_code=outcome.code,
                    last_error=outcome.detail[:1000],
                    updated_at=now,
                )
            )
            await conn.execute(
                delivery_events.insert().values(
                    delivery_id=item.id,
                    archive_id=item.archive_id,
                    at=now,
                    event="expired" if expired else "failed",
                    code=outcome.code,
                    detail=outcome.detail[:1000],
                )
            )
            if not result.rowcount:
                entry = None  # a DSN or another worker already decided, and told the sender
            if entry is not None:
                await write_entries(conn, [entry], await last_hash(conn))
        self.wake.set()
        log.info(
            "delivery.failed",
            delivery=item.id,
            code=outcome.code,
            enhanced=outcome.enhanced,
            reason=scrub_addresses(outcome.detail)[:300],
            notice=entry is not None,
        )

    async def _original(self, archive_id: int) -> Original | None:
        async with read_tx(self.engine) as conn:
            return await load_original(conn, archive_id)


def retry_delay(schedule: list[timedelta], attempts: int) -> timedelta:
    return schedule[min(attempts, len(schedule) - 1)]
