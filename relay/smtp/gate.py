"""Connection admission, stress-dependent timeouts, a minimum data rate and eviction.

An MX on the open internet meets clients that connect and say nothing, and clients that
send one byte every few seconds. Left alone, a few hundred of them hold every slot for the
whole timeout and a legitimate sender is turned away (issue 10). The models are Postfix's
stress-dependent timeouts (``smtpd_timeout = ${stress?10}${stress:300}s``), its
``smtpd_client_connection_count_limit`` and ``smtpd_min_data_rate``, and postscreen's
habit of making room for a newcomer:

- **Per-client cap.** At most ``max_connections_per_client`` open sessions per client
  address (the real one behind PROXY or XFORWARD; IPv6 counted per /64, which one
  subscriber usually holds). The one too many gets ``421 4.7.0``.
- **Connection rate.** At most ``max_connection_rate_per_client`` connections a minute
  per client address (relay.smtp.anvil; Postfix's anvil); checked before a session
  exists by relay.smtp.listener for direct clients, here for PROXY and XFORWARD ones.
- **Deadlines, not byte timers.** A session waiting for its client is idle from its last
  *productive* command (HELO/EHLO, MAIL, RCPT, DATA, STARTTLS, XFORWARD): dripping a
  command one byte at a time, or NOOP/RSET/VRFY/HELP, does not reset the clock.
- **Stress.** When the open sessions reach ``stress_threshold`` of ``max_connections``,
  the idle limit shrinks from ``timeout`` to ``stress_timeout``.
- **Minimum data rate.** In DATA, after ``data_rate_grace``, fewer than
  ``min_data_rate`` bytes/s over the last ``data_rate_window`` ends the session with
  ``421 4.4.2``; nothing of the message is kept.
- **Errors and junk.** A session that has been answered ``hard_error_limit`` errors
  (4xx/5xx), or has sent more than ``junk_command_limit`` NOOP/RSET/VRFY/EXPN/HELP, is
  told ``421 4.7.0`` and closed (Postfix's ``smtpd_hard_error_limit`` and
  ``smtpd_junk_command_limit``): one client pipelining 100,000 NOOPs or RCPTs for
  addresses that do not exist kept the loop busy and a legitimate client waited minutes.
- **Eviction.** At the global cap, a newcomer is admitted by closing the longest-idle
  session with ``421 4.7.0``, or else the slowest sender in DATA that is below the
  minimum rate (``421 4.4.2``); only when every session is busy (being answered, or
  sending at a decent rate) is the newcomer refused.

One sweeper task walks the open sessions a few times a second: cheaper than a timer per
session and per command, and it sees the whole picture (the stress level) at once.

Under stress a session that never sends a command gets no log line of its own: a flood is
counted and summarised (relay.smtp.quietlog). What the gate knows of each session, and
the limits, are relay.smtp.activity's.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import heapq
import itertools
import time
from collections import Counter
from typing import Any

import structlog

from relay import metrics
from relay.core import replies
from relay.core.replies import Reply
from relay.smtp.activity import (
    BUSY,
    DATA,
    JUNK,
    PREAMBLE,
    SILENT,
    WAITING,
    Activity,
    Limits,
    client_key,
    socket_alive,
)
from relay.smtp.anvil import TOO_FAST, ConnectionRate
from relay.smtp.proxy import allowed
from relay.smtp.quietlog import QuietLog

__all__ = [
    "BUSY", "DATA", "JUNK", "PREAMBLE", "SILENT", "WAITING", "Activity", "ConnectionGate",
    "Limits", "client_key", "socket_alive",
]  # fmt: skip

log = structlog.get_logger("relay.smtp")

SWEEP_BATCH = 100  # sessions the sweeper closes per turn of the loop


def _forget(entry: tuple[tuple[bool, float], int, Activity]) -> None:
    """A heap entry dropped: if it was its session's latest, the next wait pushes anew."""
    if entry[2].heap_entry is entry:
        entry[2].heap_entry = None


class ConnectionGate:
    """Admits, counts, times out and evicts sessions; drains them on shutdown."""

    def __init__(self, limits: Limits | int) -> None:
        self.limits = limits if isinstance(limits, Limits) else Limits(max_connections=limits)
        self.sessions: set[Activity] = set()
        self.per_client: Counter[str] = Counter()
        self.draining = False
        self.empty = asyncio.Event()
        self.empty.set()
        self._sweeper: asyncio.Task[None] | None = None
        # Evictable sessions by the start of their wait, oldest first. Entries go stale
        # (the session left, got busy or waited anew) and are skipped when popped: finding
        # the longest idle costs O(log n), not a scan of every session per newcomer, which
        # under a connect-and-drop flood at the cap cost ~1 ms each and froze the loop.
        self._idle: list[tuple[tuple[bool, float], int, Activity]] = []
        self._seq = itertools.count()
        self.rate = ConnectionRate(self.limits.rate_per_client)
        self._rate_exempt = list(self.limits.rate_exceptions)
        self._exempt_hosts: dict[str, bool] = {}  # parsing addresses costs more than a flood
        self._refused_rate = metrics.SMTP_CONNECTIONS.labels(outcome="refused_rate")
        self.quietlog = QuietLog()

    @property
    def limit(self) -> int:
        return self.limits.max_connections

    @property
    def open(self) -> int:
        return len(self.sessions)

    @property
    def stressed(self) -> bool:
        return self.open >= self.limits.stress_threshold * self.limits.max_connections

    @property
    def quiet(self) -> bool:
        """Whether a new session is logged only once it sends a command: under stress,
        or while the listener is shedding a flood."""
        return self.stressed or self.quietlog.flooded

    def idle_limit(self) -> float:
        return self.limits.stress_timeout if self.stressed else self.limits.timeout

    # --- what a session says and hears -------------------------------------------------

    def answered(self, act: Activity, command: str, code: int) -> Reply | None:
        """Count one command and its reply; the reply to close with once the session is
        over its error or junk budget, else None."""
        if command in JUNK:
            act.junk += 1
            if act.junk > self.limits.junk_commands:
                act.errors += 1
        if code >= 400:
            act.errors += 1
        if act.errors < self.limits.hard_errors:
            return None
        self.note("smtp.session.too_many_errors", act, junk=act.junk)
        metrics.SMTP_CONNECTIONS.labels(outcome="too_many_errors").inc()
        return replies.TOO_MANY_ERRORS

    # --- admission -----------------------------------------------------------------

    def too_fast(self, key: str, host: str) -> Reply | None:
        """Count one connection from ``host`` (keyed ``key``) and say if it is one too
        many (:data:`SILENT` when far over); hosts in the rate exceptions are not counted."""
        if self.limits.rate_per_client <= 0 or self._exempt(host):
            return None
        rate = self.rate.hit(key)
        if not self.rate.over(rate):
            return None
        self._refused_rate.inc()
        return SILENT if self.rate.far_over(rate) else TOO_FAST

    def calm(self, key: str) -> bool:
        """A client address well under its connection rate (relay.smtp.listener serves
        its connections first)."""
        return self.rate.calm(self.rate.estimate(key))

    def _exempt(self, host: str) -> bool:
        exempt = self._exempt_hosts.get(host)
        if exempt is None:
            if len(self._exempt_hosts) >= 65536:
                self._exempt_hosts.clear()  # a flood from many addresses: start afresh
            exempt = self._exempt_hosts[host] = allowed((host,), self._rate_exempt)
        return exempt

    def screen(self, key: str | None, host: str, pending: int = 0) -> Reply | None:
        """What can be decided before a session exists (relay.smtp.listener): the
        shutdown, the per-client cap (``pending``: this client's connections accepted and
        not yet admitted) and the connection rate, which counts this connection. Returns the
        refusal, or None. Far over the rate it is :data:`SILENT`: close without a word."""
        if self.draining:
            metrics.SMTP_CONNECTIONS.labels(outcome="refused_shutdown").inc()
            return replies.SHUTTING_DOWN
        if key is None:
            return None
        refusal = self.too_fast(key, host)
        if refusal is not None:
            return refusal
        if self.per_client[key] + pending >= self.limits.per_client:
            metrics.SMTP_CONNECTIONS.labels(outcome="refused_client_limit").inc()
            return replies.TOO_MANY_FROM_CLIENT
        return None

    def admit(self, act: Activity, key: str | None, *, rate_of: str | None = None) -> Reply | None:
        """Let a new session in, or say why not. At the cap, the longest-idle session is
        closed to make room (if the newcomer is still there); the newcomer is refused only
        if none is idle. ``rate_of``: the client host whose connection rate is counted
        here (one named by a PROXY header; a direct one was counted by the listener's
        :meth:`screen`)."""
        if self.draining:
            metrics.SMTP_CONNECTIONS.labels(outcome="refused_shutdown").inc()
            return replies.SHUTTING_DOWN
        if key is not None and rate_of is not None:
            refusal = self.too_fast(key, rate_of)
            if refusal is not None:
                return TOO_FAST  # a session exists already: it may as well say why
        if key is not None and self.per_client[key] >= self.limits.per_client:
            metrics.SMTP_CONNECTIONS.labels(outcome="refused_client_limit").inc()
            return replies.TOO_MANY_FROM_CLIENT
        if self.open >= self.limits.max_connections:
            if act.alive is not None and not act.alive():
                # Gone already (a connect-and-drop flood): it must not cost a live one
                # its slot, nor the newcomer behind it its turn.
                metrics.SMTP_CONNECTIONS.labels(outcome="refused_gone").inc()
                return replies.TOO_MANY_CONNECTIONS
            if not self._evict_one():
                metrics.SMTP_CONNECTIONS.labels(outcome="refused_limit").inc()
                return replies.TOO_MANY_CONNECTIONS
        self._enter(act, key)
        metrics.SMTP_CONNECTIONS.labels(outcome="accepted").inc()
        return None

    def rekey(self, act: Activity, key: str, host: str) -> Reply | None:
        """The real client became known (XFORWARD): count the session under it."""
        if key == act.key:
            return None
        if self.too_fast(key, host) is not None:
            return TOO_FAST
        if self.per_client[key] >= self.limits.per_client:
            metrics.SMTP_CONNECTIONS.labels(outcome="refused_client_limit").inc()
            return replies.TOO_MANY_FROM_CLIENT
        self._uncount(act)
        act.key = key
        self.per_client[key] += 1
        return None

    def _enter(self, act: Activity, key: str | None) -> None:
        act.key = key
        if key is not None:
            self.per_client[key] += 1
        self.sessions.add(act)
        act.on_evictable = self._evictable
        if act.evictable:
            self._evictable(act)
        self.empty.clear()
        metrics.SMTP_SESSIONS.set(len(self.sessions))
        if self._sweeper is None or self._sweeper.done():
            # A fresh context: not the first session's (its id would tag every line).
            self._sweeper = asyncio.get_running_loop().create_task(
                self._sweep(), name="smtp-gate", context=contextvars.Context()
            )

    def leave(self, act: Activity) -> None:
        """The session ended (idempotent: an evicted session leaves twice)."""
        if act in self.sessions:
            self.sessions.discard(act)
            self._uncount(act)
        act.gone = True
        metrics.SMTP_SESSIONS.set(len(self.sessions))
        if not self.sessions:
            self._idle.clear()
            self.empty.set()

    def _uncount(self, act: Activity) -> None:
        if act.key is not None:
            self.per_client[act.key] -= 1
            if self.per_client[act.key] <= 0:
                del self.per_client[act.key]

    def _evictable(self, act: Activity) -> None:
        key = act.evict_key
        if act.heap_entry is not None and act.heap_entry[0] == key:
            return  # still waiting since then (an unproductive command): already there
        act.heap_entry = (key, next(self._seq), act)
        heapq.heappush(self._idle, act.heap_entry)
        self._prune(4)

    def _prune(self, slack: int) -> None:
        """Drop stale heap entries once they outnumber the sessions ``slack`` to one
        (amortised O(1) per push): a stale entry pins a closed session's buffers."""
        if len(self._idle) > slack * len(self.sessions) + 64:
            kept = []
            for entry in self._idle:
                if self._current(entry):
                    kept.append(entry)
                else:
                    _forget(entry)
            self._idle = kept
            heapq.heapify(self._idle)

    def _current(self, entry: tuple[tuple[bool, float], int, Activity]) -> bool:
        key, _, act = entry
        return (
            act.heap_entry is entry
            and act in self.sessions
            and act.evictable
            and act.evict_key == key
        )

    def _longest_idle(self) -> Activity | None:
        while self._idle:
            if self._current(self._idle[0]):
                return self._idle[0][2]
            _forget(heapq.heappop(self._idle))
        return None

    def _evict_one(self) -> bool:
        """Make room: the longest-idle session goes (one that never got as far as a
        successful EHLO/MAIL/RCPT before one that did); failing that, the slowest sender in
        DATA that is below the minimum rate (even within its grace: a newcomer waits for
        nobody's grace). A session we are working for is never evicted."""
        now = time.monotonic()
        victim = self._longest_idle()
        if victim is not None:
            self.note(
                "smtp.session.evicted", victim, idle=round(victim.idle_for(now), 1), open=self.open
            )
            metrics.SMTP_CONNECTIONS.labels(outcome="evicted").inc()
            self._close(victim, replies.EVICTED)
            return True
        settle = min(1.0, self.limits.data_rate_grace)
        slow = [
            (a.data_bytes / (now - a.data_started), a)
            for a in self.sessions
            if a.phase == DATA and now - a.data_started >= settle
        ]
        slow = [(rate, a) for rate, a in slow if rate < self.limits.min_data_rate]
        if not slow:
            return False
        rate, victim = min(slow, key=lambda pair: pair[0])
        self.note("smtp.data.evicted", victim, rate=round(rate, 1), open=self.open)
        metrics.SMTP_CONNECTIONS.labels(outcome="evicted").inc()
        self._close(victim, replies.TOO_SLOW)
        return True

    def _close(self, act: Activity, reply: Reply) -> None:
        self.leave(act)  # counted out now, not when the transport gets round to it
        act.hang_up(reply)

    # --- the sweeper ---------------------------------------------------------------

    def sweep(self, now: float | None = None, budget: int = 0) -> int:
        """Close the sessions past their limit, at most ``budget`` (0: all); returns
        how many. Run by the sweeper task (and directly by tests)."""
        now = time.monotonic() if now is None else now
        limits, idle_limit = self.limits, self.idle_limit()
        closed = 0
        self._prune(1)  # after a crowd has left, its sessions are not kept alive here
        for act in list(self.sessions):
            if budget and closed >= budget:
                break
            over = act.overdue(now, limits, idle_limit)
            if over is not None:
                event, outcome, reply, fields = over
                fields = {**fields, "stressed": self.stressed} if outcome == "timeout" else fields
                self.note(event, act, **fields)
                metrics.SMTP_CONNECTIONS.labels(outcome=outcome).inc()
                self._close(act, reply)
                closed += 1
        return closed

    async def _sweep(self) -> None:
        closed = 0
        while self.sessions:
            # A crowd that came together times out together: closing 2,000 sessions in
            # one turn held the loop ~0.3 s, so a full batch is followed by the next one
            # at the next turn, not in a single callback.
            await asyncio.sleep(0 if closed >= SWEEP_BATCH else self.limits.tick)
            try:
                closed = self.sweep(budget=SWEEP_BATCH)
                self.summarise()
            except Exception as err:  # the sweeper must outlive any one bad session
                log.error("smtp.gate.error", error=type(err).__name__, exc_info=err)
        self.summarise(force=True)

    # --- log lines under stress ----------------------------------------------------

    def shed(self, event: str) -> None:
        """The listener dropped a connection before it became a session: counted."""
        self.quietlog.shed(event)
        self.summarise()

    def note(self, event: str, act: Activity | None = None, **fields: Any) -> None:
        """Log ``event`` for a session, or only count it when the session is quiet
        (admitted under stress, not a command yet) or there is none (the listener's)."""
        self.quietlog.note(event, None if act is None or act.quiet else act.session, **fields)

    def summarise(self, *, force: bool = False, now: float | None = None) -> None:
        self.quietlog.summarise(force=force, now=now, open=self.open, rate_tracked=len(self.rate))

    # --- shutdown ------------------------------------------------------------------

    async def drain(self, timeout: float) -> int:
        """Close idle sessions now, the others after their transaction; abort whatever is
        still open after ``timeout`` seconds. Returns how many had to be aborted."""
        self.draining = True
        for act in list(self.sessions):
            act.begin_drain()
        try:
            await asyncio.wait_for(self.empty.wait(), timeout)
            return 0
        except TimeoutError:
            left = list(self.sessions)
            for act in left:
                self.leave(act)
                act.hang_up(replies.SHUTTING_DOWN)
            return len(left)
        finally:
            if self._sweeper is not None:
                self._sweeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._sweeper
