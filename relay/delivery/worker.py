"""The delivery worker: claim due rows, send, record, retry or bounce.

Sending is a Transport's (relay.delivery.transport): the worker hands it an envelope and
the bytes and gets an Outcome back; it knows nothing of SMTP, routes or connections.

It runs in the relay process (woken by each commit) or alone (``relay worker``); several
workers share one PostgreSQL queue through leases and ``FOR UPDATE SKIP LOCKED``. A
worker renews the leases of what it is sending, so only a dead worker's rows are taken
over, and it changes a row only while it still holds the claim (``queue.held_by``).
A failure and its bounce notice are written in one transaction: never one without the
other, and never a notice about a notice or about automatic mail.

The database may go away mid-send. An outcome that cannot be recorded is kept (in memory
and in the local journal, relay.delivery.journal) and recorded as soon as the database
is back; its row stays in ``_held``, so its lease is renewed then and this worker never
claims it again. While the database is unreachable the worker claims nothing, loads
nothing, and backs off; a lease that ran out meanwhile is taken over by nobody until the
database has been back for a whole lease (queue.claim). A message is sent twice only if
the process dies between the recipient's 250 and the outcome reaching the database or
the journal.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from relay import metrics
from relay.bounce import explain, notice_entry, original_from
from relay.clock import utcnow
from relay.core.outcomes import DeliveryStatus
from relay.delivery import journal
from relay.delivery.journal import OutcomeJournal
from relay.delivery.loader import Loader
from relay.delivery.transport import Envelope, Outcome, Transport
from relay.log import mask, scrub_addresses
from relay.settings import Settings
from relay.store import originals, queue

if TYPE_CHECKING:  # a handle passed through to relay.store; no SQL here
    from sqlalchemy.ext.asyncio import AsyncEngine

log = structlog.get_logger("relay.delivery")
Signer = Callable[[bytes], bytes]
RECORD_BATCH = 200  # outcomes per transaction at most
# How long the recorder lets outcomes gather before a transaction: sends end one by one,
# and each transaction (a durable commit) costs far more CPU than a row in it. The
# client's 250 came long before; a few ms here delay only the row's status.
RECORD_WINDOW = 0.01
DB_PAUSE = (0.25, 4.0)  # first and longest pause between tries while the database is away


@dataclass(frozen=True)
class Kept:
    """An outcome the database could not take yet, and when it happened."""

    item: queue.Claimed
    outcome: Outcome
    at: datetime


def journal_dir(settings: Settings) -> Path:
    """``delivery.journal_dir``, else beside the SQLite file, else ``delivery-journal``
    in the working directory (the state directory in the shipped units)."""
    if settings.delivery.journal_dir is not None:
        return settings.delivery.journal_dir
    url = settings.database.url
    if url.startswith("sqlite+aiosqlite:///") and ":memory:" not in url:
        return Path(url.removeprefix("sqlite+aiosqlite:///")).parent / "delivery-journal"
    return Path("delivery-journal")


class DeliveryWorker:
    def __init__(
        self,
        settings: Settings,
        engine: AsyncEngine,
        transport: Transport,
        *,
        signer: Signer | None = None,
        wake: asyncio.Event | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.transport = transport
        self.signer = signer
        self.wake = wake or asyncio.Event()
        self.name = f"worker-{secrets.token_hex(4)}"
        self._slots = asyncio.Semaphore(settings.delivery.concurrency)
        self._loader = Loader(engine)  # the messages of a claim in one read
        self._running: set[asyncio.Task[None]] = set()
        self._held: set[int] = set()  # delivery ids we are sending: leases to renew
        self._renewer: asyncio.Task[None] | None = None
        self._recorder: asyncio.Task[None] | None = None
        self._attempts: asyncio.Queue[tuple[queue.Attempt, asyncio.Future[None]]] = asyncio.Queue()
        self._stopping = asyncio.Event()
        self._claiming = False  # the claim loop runs
        self._claim_done = asyncio.Event()
        # Outcomes waiting for the database (their ids stay in _held), and its state.
        self._kept: dict[int, Kept] = {}
        self._kept_added = asyncio.Event()
        self._flushing = asyncio.Lock()
        self._journal = OutcomeJournal(journal_dir(settings), self.name)
        self._journal_lock = asyncio.Lock()
        self._keeper: asyncio.Task[None] | None = None
        self._db_down_since: float | None = None
        self._db_back = asyncio.Event()
        # A worker takes over no lapsed lease until it has seen the database up for a
        # whole lease, counted from its start too: the holder renews in that time.
        self._db_up_since = time.monotonic()

    async def run(self) -> None:
        await self._adopt_journals()
        self._renewer = asyncio.create_task(self._renew_leases(), name="delivery-leases")
        self._recorder = asyncio.create_task(self._record_batches(), name="delivery-record")
        self._keeper = asyncio.create_task(self._retry_kept(), name="delivery-kept")
        helpers = (self._renewer, self._recorder, self._keeper)
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
        batch forms by itself while the previous one commits (see queue.settle)."""
        while True:
            batch = [await self._attempts.get()]
            if self._attempts.empty() and len(self._running) > 1:  # more sends will end
                await asyncio.sleep(RECORD_WINDOW)
            while not self._attempts.empty() and len(batch) < RECORD_BATCH:
                batch.append(self._attempts.get_nowait())
            try:
                await queue.settle(self.engine, [attempt for attempt, _ in batch])
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
            await queue.settle(self.engine, [attempt])
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._attempts.put_nowait((attempt, fut))
        await fut

    async def _renew_leases(self) -> None:
        """Renew the leases of in-flight sends every third of the lease, also while
        stop() waits for them to finish."""
        lease = self.settings.delivery.claim_lease
        every = min(max(lease.total_seconds() / 3, 0.05), 10.0)
        while True:
            await asyncio.sleep(every)
            try:
                await queue.renew(self.engine, self.name, sorted(self._held), lease)
            except Exception as err:  # the next round tries again
                self._db_failed("renew", err)
            else:
                if self._held:
                    self._db_worked()

    async def _claim_loop(self) -> None:
        self._claiming = True
        try:
            await self._claim_rounds()
        finally:
            self._claiming = False
            self._claim_done.set()

    async def _claim_rounds(self) -> None:
        d = self.settings.delivery
        pause = 0.0  # grows while the database is unreachable: no busy loop against it
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
                        self.engine,
                        self.name,
                        limit=limit,
                        lease=d.claim_lease,
                        takeover=self._may_take_over(),
                    )
                except Exception as err:  # database trouble: keep the worker alive
                    self._db_failed("claim", err)
                    pause = min(max(pause * 2, DB_PAUSE[0]), DB_PAUSE[1])
                    await self._pause(pause)
                    continue
                self._db_worked()
                pause = 0.0
            full = free > 0 and len(items) == limit  # there may be more due right now
            # A row we are still sending (or whose outcome waits for the database) comes
            # back only if its lease lapsed: the claim renewed it; never send it twice.
            items = [item for item in items if item.id not in self._held]
            for item in items:
                self._held.add(item.id)
                task = asyncio.create_task(self._deliver(item))
                self._running.add(task)
                task.add_done_callback(self._running.discard)
            if not full:
                # A send ending frees a slot: worth a claim only when none was free
                # (more may be due); otherwise the claim found all that was due, and a
                # claim per finished send was most of the worker's transactions.
                await self._idle(d.poll_interval.total_seconds(), on_send_done=free <= 0)

    def _may_take_over(self) -> bool:
        lease = self.settings.delivery.claim_lease.total_seconds()
        return self._db_down_since is None and time.monotonic() - self._db_up_since >= lease

    def _db_failed(self, during: str, err: BaseException) -> None:
        if self._db_down_since is None:
            self._db_down_since = time.monotonic()
            self._db_back.clear()
            log.error("delivery.database_unavailable", during=during, error=type(err).__name__)
        else:
            log.debug("delivery.database_unavailable", during=during, error=type(err).__name__)

    def _db_worked(self) -> None:
        if self._db_down_since is None:
            return
        now = time.monotonic()
        log.info("delivery.database_back", after=round(now - self._db_down_since, 1))
        self._db_down_since = None
        self._db_up_since = now
        self._db_back.set()

    async def _pause(self, seconds: float) -> None:
        """Sleep, cut short by stop()."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _idle(self, seconds: float, *, on_send_done: bool = True) -> None:
        waiters: list[asyncio.Task[object]] = [
            asyncio.create_task(self.wake.wait()),
            asyncio.create_task(self._stopping.wait()),
        ]
        if self._running and on_send_done:
            waiters.append(
                asyncio.create_task(asyncio.wait(set(self._running), return_when="FIRST_COMPLETED"))
            )
        _, pending = await asyncio.wait(waiters, timeout=seconds, return_when="FIRST_COMPLETED")
        for p in pending:
            p.cancel()

    async def stop(self, grace: float = 30.0) -> None:
        """Stop claiming; let in-flight deliveries finish within ``grace`` seconds."""
        loop = asyncio.get_running_loop()
        begun = loop.time()
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
        await self._last_flush(max(grace - (loop.time() - begun), 1.0))
        for helper in (self._renewer, self._recorder, self._keeper):
            if helper is not None:
                helper.cancel()
        self._journal.close()
        await self.transport.close()

    async def _last_flush(self, seconds: float) -> None:
        """On stop, give kept outcomes what is left of the grace to reach the database
        (bounded even if it hangs); what is left stays in the journal for the next
        worker started on this host."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._flush_until_done(), seconds)
        if self._kept:
            log.warning(
                "delivery.outcomes_journaled",
                outcomes=len(self._kept),
                journal=str(self._journal.path),
            )

    async def _flush_until_done(self) -> None:
        pause = DB_PAUSE[0]
        while not await self._flush():
            await asyncio.sleep(pause)
            pause = min(pause * 2, DB_PAUSE[1])

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
                break
            await asyncio.gather(*(self._deliver(i) for i in items))
        await self._flush()

    async def _deliver(self, item: queue.Claimed) -> None:
        self._held.add(item.id)
        try:
            await self._deliver_held(item)
        finally:
            if item.id not in self._kept:  # a kept outcome's lease is still renewed
                self._held.discard(item.id)

    async def _deliver_held(self, item: queue.Claimed) -> None:
        async with self._slots:
            try:
                data = await self._load(item)
                if data is None:
                    return  # stopping while the database is away; nothing was sent
                if self.signer is not None:
                    data = self.signer(data)
                started = time.monotonic()
                envelope = Envelope(item.mail_from, item.rcpt)
                outcome = await self.transport.deliver(envelope, data)
                metrics.observe_delivery_attempt(time.monotonic() - started, outcome.status)
            except Exception as err:
                log.error(
                    "delivery.internal_error",
                    delivery=item.id,
                    error=type(err).__name__,
                    exc_info=err,
                )
                outcome = Outcome("deferred", None, "4.3.0", "internal error")
            # Record what really happened. If the database cannot take it now, keep it
            # until it can: forgetting a sent message would send it again.
            at = utcnow()
            try:
                await self._record(item, outcome)
            except asyncio.CancelledError:  # stop() gave up waiting (a hung database)
                self._keep_now(item, outcome, at)
                raise
            except Exception as err:
                await self._keep(item, outcome, at, err)
            else:
                self._db_worked()

    async def _load(self, item: queue.Claimed) -> bytes | None:
        """The message to send, waiting out a database outage (None: stopped meanwhile).
        A missing copy is an error of its own (LookupError), not an outage."""
        pause = DB_PAUSE[0]
        while True:
            try:
                return await self._loader.get(item.archive_id)
            except LookupError:
                raise
            except Exception as err:
                self._db_failed("load", err)
            if self._stopping.is_set():
                return None
            await self._pause(pause)
            pause = min(pause * 2, DB_PAUSE[1])

    async def _keep(
        self, item: queue.Claimed, outcome: Outcome, at: datetime, err: Exception
    ) -> None:
        """Hold on to an outcome the database refused: durably in the journal, then in
        memory, where the keeper (_retry_kept) picks it up."""
        self._db_failed("record", err)
        log.warning("delivery.outcome_kept", delivery=item.id, status=outcome.status)
        try:
            async with self._journal_lock:
                await asyncio.to_thread(self._journal.keep, [journal.encode(item, outcome, at)])
        except OSError as jerr:  # still kept in memory; only a restart would lose it
            log.error("delivery.journal_failed", error=type(jerr).__name__, detail=str(jerr))
        self._kept[item.id] = Kept(item, outcome, at)
        self._kept_added.set()

    def _keep_now(self, item: queue.Claimed, outcome: Outcome, at: datetime) -> None:
        """_keep for a task being cancelled: no awaiting, so the journal write blocks."""
        log.warning("delivery.outcome_kept", delivery=item.id, status=outcome.status)
        try:
            self._journal.keep([journal.encode(item, outcome, at)])
        except OSError as err:
            log.error("delivery.journal_failed", error=type(err).__name__, detail=str(err))
        self._kept[item.id] = Kept(item, outcome, at)

    async def _retry_kept(self) -> None:
        """Record kept outcomes until the database takes them, backing off; a successful
        claim or renewal (the database is back) cuts the pause short."""
        pause = DB_PAUSE[0]
        while True:
            if not self._kept:
                self._kept_added.clear()
                await self._kept_added.wait()
                pause = DB_PAUSE[0]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._db_back.wait(), pause)
            if await self._flush():
                pause = DB_PAUSE[0]
            else:
                pause = min(pause * 2, DB_PAUSE[1])

    async def _flush(self) -> bool:
        """Try to record every kept outcome once; True when none is left."""
        async with self._flushing:
            kept = list(self._kept.values())
            if not kept:
                return True
            results = await asyncio.gather(
                *(self._record(k.item, k.outcome, at=k.at) for k in kept), return_exceptions=True
            )
            done = [k.item.id for k, r in zip(kept, results, strict=True) if r is None]
            for i in done:
                del self._kept[i]
                self._held.discard(i)
            if done:
                self._db_worked()
                log.info("delivery.kept_recorded", outcomes=len(done), left=len(self._kept))
                try:
                    async with self._journal_lock:
                        await asyncio.to_thread(self._journal.done, done)
                except OSError as err:
                    log.error("delivery.journal_failed", error=type(err).__name__, detail=str(err))
            errors = [r for r in results if isinstance(r, Exception)]
            if errors:
                self._db_failed("record", errors[0])
            return not self._kept

    async def _adopt_journals(self) -> None:
        """Before the first claim: record the outcomes that workers gone from this host
        left in their journals (a clean stop or a crash during an outage)."""
        try:
            async with self._journal_lock:
                entries = await asyncio.to_thread(self._journal.adopt)
        except OSError as err:
            log.error("delivery.journal_failed", error=type(err).__name__, detail=str(err))
            return
        for entry in entries:
            try:
                item, outcome, at = journal.decode(entry)
            except (KeyError, TypeError, ValueError):  # its content holds addresses: not logged
                log.error("delivery.journal_unreadable")
                continue
            self._kept[item.id] = Kept(item, outcome, at)
        if self._kept:
            await self._flush()
            self._kept_added.set()

    async def _record(
        self, item: queue.Claimed, outcome: Outcome, *, at: datetime | None = None
    ) -> None:
        """Write the outcome (``at``: it happened then and is recorded late)."""
        d = self.settings.delivery
        now = utcnow()
        if outcome.status == "deferred" and now - item.created_at >= d.give_up_after:
            outcome = Outcome(
                "failed", outcome.code, outcome.enhanced, "expired: " + outcome.detail
            )
        if outcome.status == "delivered":
            await self._save(
                queue.Attempt(
                    item, DeliveryStatus.DELIVERED, "delivered", outcome.code, outcome.detail,
                    at=at,
                )
            )
            log.info("delivery.delivered", delivery=item.id, attempts=item.attempts + 1)
        elif outcome.status == "deferred":
            delay = retry_delay(d.retry, item.attempts)
            await self._save(
                queue.Attempt(
                    item, DeliveryStatus.DEFERRED, "deferred", outcome.code, outcome.detail,
                    now + delay, at,
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
            await self._fail(item, outcome, at)

    async def _fail(self, item: queue.Claimed, outcome: Outcome, at: datetime | None) -> None:
        """Mark failed and queue the notice in the same transaction (queue.fail): never
        one without the other."""
        now = utcnow()
        expired = outcome.detail.startswith("expired")
        entry = None
        if item.notify and item.mail_from:
            original = original_from(await originals.read_head(self.engine, item.archive_id))
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
        told = await queue.fail(
            self.engine, item, event="expired" if expired else "failed", code=outcome.code,
            detail=outcome.detail, at=at, notice=entry,
        )  # fmt: skip
        self.wake.set()
        log.info(
            "delivery.failed",
            delivery=item.id,
            code=outcome.code,
            enhanced=outcome.enhanced,
            reason=scrub_addresses(outcome.detail)[:300],
            notice=told,
        )


def retry_delay(schedule: list[timedelta], attempts: int) -> timedelta:
    return schedule[min(attempts, len(schedule) - 1)]
