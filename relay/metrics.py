"""Prometheus metrics: in-process histograms plus totals read from the database.

Two kinds, for a reason. The archive and ``delivery_events`` are append-only, so totals by
verdict, finding kind or delivery outcome are *read from the database at scrape time*
(``DatabaseCollector``): they are true monotonic counters for the whole cluster, the same
number from every relay process, surviving restarts; query them with ``max by (...)``,
not ``sum``. What the database does not record (how long DATA took to answer, refused RCPTs,
how long one delivery attempt took) is counted in-process here and needs a hook at the
place it happens.

The collector reads incrementally: rows older than ``SETTLE`` seconds are folded into
running totals once and never read again; only the recent tail is re-read each scrape.
The settling delay covers transactions that commit out of id order (concurrent workers
appending delivery events), so no row is missed or counted twice.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import structlog
from prometheus_client import CollectorRegistry, Gauge, Histogram
from prometheus_client import Counter as PCounter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from relay.clock import utcnow
from relay.core.outcomes import DeliveryStatus, ReasonCode, Verdict

if TYPE_CHECKING:  # a handle passed through to relay.store; no SQL here
    from sqlalchemy.ext.asyncio import AsyncEngine

log = structlog.get_logger("relay.metrics")
REGISTRY = CollectorRegistry(auto_describe=True)
SETTLE = 60.0  # seconds before a row is folded into the running totals
PAGE = 5000
MAX_PAGES = 40  # per table and scrape: the first scrape of a big archive stays short
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600, 14400, 86400)
QUEUE_STATES = (DeliveryStatus.QUEUED, DeliveryStatus.SENDING, DeliveryStatus.DEFERRED)
RESPONSES_EVERY = 300.0  # seconds between recomputing the response-time gauges
RESPONSES_DAYS = 30

# --- in-process instruments -----------------------------------------------------------

SMTP_CONNECTIONS = PCounter(
    "relay_smtp_connections",
    "SMTP connections by outcome: accepted; refused_limit, refused_client_limit,"
    " refused_rate, refused_proxy, refused_shutdown, refused_gone (not admitted); evicted,"
    " timeout, too_slow,"
    " too_many_errors (closed by the gate)",
    ["outcome"],
    registry=REGISTRY,
)
SMTP_SESSIONS = Gauge("relay_smtp_sessions_open", "Open SMTP sessions", registry=REGISTRY)
RCPT_REFUSED = PCounter(
    "relay_smtp_rcpt_refused",
    "RCPT commands refused, by enhanced status code",
    ["code"],
    registry=REGISTRY,
)
DATA_SECONDS = Histogram(
    "relay_smtp_data_seconds",
    "From the end of DATA to our reply (intake, sender check, policy, durable commit)",
    ["reply"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
    registry=REGISTRY,
)
DELIVERY_ATTEMPT_SECONDS = Histogram(
    "relay_delivery_attempt_seconds",
    "One delivery attempt: the SMTP conversation with the smarthost or recipient MX",
    ["outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
    registry=REGISTRY,
)
TLS_RELOADS = PCounter(
    "relay_tls_reloads", "TLS certificate reloads (SIGHUP) by result", ["result"], registry=REGISTRY
)
TLS_EXPIRY = Gauge(
    "relay_tls_cert_expiry_timestamp_seconds",
    "Expiry (Unix time) of the certificate new connections are offered",
    registry=REGISTRY,
)

LIMIT_HITS = PCounter(
    "relay_limit_hits",
    "Refusals by a rate limit, an opt-out or the archive allowance (relay.ratelimits)",
    ["limit"],
    registry=REGISTRY,
)
LIMIT_SETTING = Gauge(
    "relay_limit_setting", "Configured limits of [limits] (0: off)", ["limit"], registry=REGISTRY
)


def observe_data(seconds: float, reply: str) -> None:
    """Called by the SMTP server after the DATA reply is written."""
    DATA_SECONDS.labels(reply=f"{reply[:1]}xx" if reply[:1].isdigit() else "other").observe(seconds)


def observe_rcpt_refused(enhanced: str) -> None:
    RCPT_REFUSED.labels(code=enhanced).inc()


def observe_delivery_attempt(seconds: float, outcome: str) -> None:
    """For the delivery worker, around ``transport.send``: one attempt's duration and its
    outcome status (delivered, deferred, failed)."""
    DELIVERY_ATTEMPT_SECONDS.labels(outcome=outcome).observe(seconds)


# --- labels that stay bounded ----------------------------------------------------------

_REFUSING = (Verdict.REFUSED, Verdict.TEMPFAIL)
_CODES = {str(c) for c in ReasonCode}


def reason_label(verdict: str, code: str | None, findings: str) -> str:
    """A label for why a message was refused, from a small set: the record's reason code
    (relay.core.outcomes.ReasonCode), never its free text. A policy rejection is labelled
    with the rule that rejected it (from the findings); a refusal archived before reason
    codes existed (migration 0007r) is ``other``."""
    if verdict == Verdict.REJECT:
        for f in _findings(findings):
            if f.get("action") == "reject" and f.get("rule"):
                return str(f["rule"])[:64]
        return str(ReasonCode.POLICY)
    if verdict not in _REFUSING:
        return ""
    return code if code is not None and code in _CODES else "other"


def _findings(text: str) -> list[dict[str, Any]]:
    try:
        data = json.loads(text or "[]")
    except ValueError:
        return []
    return [f for f in data if isinstance(f, dict)] if isinstance(data, list) else []


# --- totals from the append-only tables ------------------------------------------------


@dataclass
class _Totals:
    messages: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    redactions: Counter[str] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)
    latency: Counter[float] = field(default_factory=Counter)  # bucket upper bound -> count
    latency_sum: float = 0.0

    def merged(self, other: _Totals) -> _Totals:
        return _Totals(
            self.messages + other.messages,
            self.redactions + other.redactions,
            self.events + other.events,
            self.latency + other.latency,
            self.latency_sum + other.latency_sum,
        )


def _bucket(seconds: float) -> float:
    return next((b for b in LATENCY_BUCKETS if seconds <= b), float("inf"))


class _Tail:
    """Incremental reader of one append-only table: settled totals plus a cursor."""

    def __init__(self) -> None:
        self.cursor = 0
        self.settled = _Totals()
        self.behind = False

    async def read(
        self,
        page: Callable[[int, int], Awaitable[Sequence[Any]]],
        at_of: Callable[[Any], Any],
        add: Callable[[_Totals, Any], None],
    ) -> _Totals:
        """Fold settled rows into ``self.settled``; return totals of the unsettled tail.
        ``page(after, limit)`` reads rows with ``id > after`` in id order (relay.store.stats)."""
        cutoff = utcnow() - timedelta(seconds=SETTLE)
        live, after, settling = _Totals(), self.cursor, True
        for _ in range(MAX_PAGES):
            rows = await page(after, PAGE)
            for row in rows:
                if settling and at_of(row) < cutoff:
                    add(self.settled, row)
                    self.cursor = row.id
                else:
                    settling = False
                    add(live, row)
            if len(rows) < PAGE:
                self.behind = False
                return live
            after = rows[-1].id
        # A big table on the first scrape: catch up over several scrapes. The totals lag
        # but never go down (the cursor only advances; every scrape reads at least as far).
        self.behind = True
        return live


def _add_record(t: _Totals, row: Any) -> None:
    label = reason_label(row.verdict, row.reason_code, row.findings)
    t.messages[(row.kind, row.verdict, label)] += 1
    if row.verdict == Verdict.REDACT:
        for f in _findings(row.findings):
            if f.get("action") == "redact":
                t.redactions[str(f.get("kind", "unknown"))[:64]] += 1


def _add_event(t: _Totals, row: Any) -> None:
    t.events[row.event] += 1
    if row.event == "delivered" and row.created_at is not None:
        seconds = max(0.0, (row.at - row.created_at).total_seconds())
        t.latency[_bucket(seconds)] += 1
        t.latency_sum += seconds


class DatabaseCollector(Collector):
    """Cluster-wide counters and queue gauges, read from the database at scrape time.

    ``collect()`` is synchronous (prometheus-client calls it); ``refresh()`` does the async
    reads first and ``collect()`` reports the last snapshot.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._archive = _Tail()
        self._events = _Tail()
        self._lock = asyncio.Lock()
        self._totals = _Totals()
        self._queue: dict[str, int] = {}
        self._oldest = 0.0
        self._up = 0
        self._seconds = 0.0
        self._responses: dict[str, float] = {}
        self._responses_at = -RESPONSES_EVERY

    async def refresh(self, timeout: float = 10.0) -> bool:
        async with self._lock:
            started = time.monotonic()
            try:
                await asyncio.wait_for(self._read(), timeout)
                self._up = 1
            except Exception:
                self._up = 0
            self._seconds = time.monotonic() - started
            if started - self._responses_at >= RESPONSES_EVERY:
                self._responses_at = started
                await self._read_responses(timeout)
            return bool(self._up)

    async def _read(self) -> None:
        from relay.store import stats

        async with stats.reader(self.engine) as db:
            live_records = await self._archive.read(
                db.records_page, lambda r: r.created_at, _add_record
            )
            live_events = await self._events.read(db.events_page, lambda r: r.at, _add_event)
            queue = await db.queue_depth(QUEUE_STATES)
        self._totals = self._archive.settled.merged(live_records).merged(
            self._events.settled.merged(live_events)
        )
        self._queue = {str(state): 0 for state in QUEUE_STATES}
        oldest = None
        for status, count, first in queue:
            self._queue[status] = int(count)
            if first is not None:
                oldest = first if oldest is None or first < oldest else oldest
        self._oldest = (utcnow() - oldest).total_seconds() if oldest else 0.0
        from relay.store import (
            holds,  # here: relay.store.holds -> bounce -> commit -> ratelimits -> us
        )

        self._holds_overdue = await holds.overdue(self.engine)

    async def _read_responses(self, timeout: float) -> None:
        """The 24-hour response rule over the last 30 days, summed over all sellers (a
        per-seller label would put real addresses in the metrics)."""
        from relay.store.reports import response_times

        try:
            report = await asyncio.wait_for(
                response_times(self.engine, days=RESPONSES_DAYS), timeout
            )
        except Exception as err:
            log.warning("metrics.responses_failed", error=type(err).__name__)
            return
        sums: Counter[str] = Counter()
        for seller in report["sellers"]:
            for key in ("buyer_messages", "answered", "answered_late", "open_overdue"):
                sums[key] += seller[key]
            if seller["average_response_seconds"] is not None:
                sums["seconds"] += seller["average_response_seconds"] * seller["answered"]
        decided = sums["answered"] + sums["open_overdue"]
        self._responses = {
            "buyer_messages": sums["buyer_messages"],
            "open_overdue": sums["open_overdue"],
            "late_ratio": (sums["answered_late"] + sums["open_overdue"]) / decided
            if decided
            else 0.0,
            "average_seconds": sums["seconds"] / sums["answered"] if sums["answered"] else 0.0,
        }

    def collect(self) -> Any:
        yield from self._collect_totals()
        window = f"{RESPONSES_DAYS}d"
        for key, help_text in (
            ("buyer_messages", "Buyer messages that reached a seller in the window"),
            ("open_overdue", "Buyer messages still unanswered after 24 hours"),
            ("late_ratio", "Share of buyer messages answered late or not at all (24-hour rule)"),
            ("average_seconds", "Average time sellers took to answer a buyer message"),
        ):
            if key in self._responses:
                gauge = GaugeMetricFamily(f"relay_response_{key}", help_text, labels=["window"])
                gauge.add_metric([window], self._responses[key])
                yield gauge

    def _collect_totals(self) -> Any:
        t = self._totals
        messages = CounterMetricFamily(
            "relay_messages",
            "Archived messages by kind, verdict and refusal reason (cluster-wide, from the DB)",
            labels=["kind", "verdict", "reason"],
        )
        for (kind, verdict, reason), n in sorted(t.messages.items()):
            messages.add_metric([kind, verdict, reason], n)
        yield messages
        redactions = CounterMetricFamily(
            "relay_redactions", "Redactions in delivered messages, by finding kind", labels=["kind"]
        )
        for kind, n in sorted(t.redactions.items()):
            redactions.add_metric([kind], n)
        yield redactions
        events = CounterMetricFamily(
            "relay_delivery_events", "Delivery attempt outcomes (cluster-wide)", labels=["event"]
        )
        for event, n in sorted(t.events.items()):
            events.add_metric([event], n)
        yield events
        running, buckets = 0, []
        for bound in (*LATENCY_BUCKETS, float("inf")):
            running += t.latency[bound]
            buckets.append(("+Inf" if bound == float("inf") else str(bound), running))
        yield HistogramMetricFamily(
            "relay_delivery_latency_seconds",
            "From acceptance (250) to the recipient's server accepting it",
            buckets=buckets,
            sum_value=t.latency_sum,
        )
        depth = GaugeMetricFamily("relay_queue_depth", "Deliveries by state", labels=["status"])
        for status, n in self._queue.items():
            depth.add_metric([status], n)
        yield depth
        yield GaugeMetricFamily(
            "relay_queue_oldest_age_seconds",
            "Age of the oldest delivery not yet delivered or failed",
            value=self._oldest,
        )
        yield GaugeMetricFamily(
            "relay_database_up", "1 if the last scrape could read the database", value=self._up
        )
        yield GaugeMetricFamily(  # relay.store.holds: messages waiting for ops past the alert age
            "relay_holds_overdue", "Held messages older than policy.hold_alert_after",
            value=getattr(self, "_holds_overdue", 0),
        )
        yield GaugeMetricFamily(
            "relay_metrics_catching_up",
            "1 while the counters are still reading an existing archive (first scrapes)",
            value=int(self._archive.behind or self._events.behind),
        )
        yield GaugeMetricFamily(
            "relay_database_scrape_seconds",
            "Time the last scrape's reads took",
            value=self._seconds,
        )
