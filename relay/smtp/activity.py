"""What the gate knows of one SMTP session, and the limits it holds sessions to.

The session (relay.smtp.server) updates its ``Activity`` as commands come and go; the
gate (relay.smtp.gate) reads the activities of all sessions to time out, evict and drain
them. Kept apart from the gate so the per-session bookkeeping (phases, the idle clock,
the data-rate samples, the eviction order) reads on its own.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from relay.core import replies
from relay.core.replies import Reply
from relay.smtp.proxy import Network, parse_networks

# Phases of a session, as the gate sees them.
WAITING = "waiting"  # for the client's next command (or its TLS handshake)
BUSY = "busy"  # we are working on a command: never timed out, never evicted
DATA = "data"  # reading the message: subject to the data-rate check
PREAMBLE = "preamble"  # before the banner (PROXY header): aiosmtpd's own timer
JUNK = frozenset({"NOOP", "RSET", "VRFY", "EXPN", "HELP"})  # move no transaction forward


@dataclass(frozen=True)
class Limits:
    """The [smtp] settings the gate enforces, in seconds and bytes."""

    max_connections: int = 2000
    per_client: int = 50
    timeout: float = 300.0
    stress_threshold: float = 0.5
    stress_timeout: float = 10.0
    min_data_rate: int = 500
    data_rate_grace: float = 10.0
    data_rate_window: float = 30.0
    hard_errors: int = 20
    junk_commands: int = 100
    rate_per_client: int = 0  # connections a minute per client address; 0: unlimited
    rate_exceptions: tuple[Network, ...] = ()  # client networks whose rate is not counted

    @classmethod
    def from_settings(cls, smtp: Any) -> Limits:
        return cls(
            max_connections=smtp.max_connections,
            per_client=smtp.max_connections_per_client,
            timeout=smtp.timeout.total_seconds(),
            stress_threshold=smtp.stress_threshold,
            stress_timeout=smtp.stress_timeout.total_seconds(),
            min_data_rate=smtp.min_data_rate,
            data_rate_grace=smtp.data_rate_grace.total_seconds(),
            data_rate_window=smtp.data_rate_window.total_seconds(),
            hard_errors=smtp.hard_error_limit,
            junk_commands=smtp.junk_command_limit,
            rate_per_client=smtp.max_connection_rate_per_client,
            rate_exceptions=tuple(parse_networks(smtp.connection_rate_exceptions)),
        )

    @property
    def tick(self) -> float:
        """How often the sweeper looks: a fraction of the shortest limit, within reason."""
        shortest = min(self.stress_timeout, self.data_rate_grace, self.data_rate_window)
        return max(0.05, min(1.0, shortest / 5))


def client_key(host: str) -> str:
    """What the per-client cap counts: the address, IPv6 by its /64."""
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


@dataclass(eq=False)
class Activity:
    """What the gate knows of one session; the session updates it, the gate reads it.

    ``hang_up`` sends a final reply and closes the connection (the session's side).
    """

    hang_up: Callable[[Reply], None]
    begin_drain: Callable[[], None] = lambda: None
    session: str = ""  # the session id, for the gate's own log lines
    phase: str = WAITING
    since: float = field(default_factory=time.monotonic)  # start of the current wait
    key: str | None = None  # the per-client key; None: a trusted front end, not counted
    data_started: float = 0.0
    data_bytes: int = 0
    last_byte: float = 0.0
    samples: deque[tuple[float, int]] = field(default_factory=deque)
    writing_since: float | None = None  # a reply is stuck: the client does not read
    gone: bool = False
    # The gate's: told each time the session becomes evictable (its eviction heap), and
    # the session's latest entry there (the only one that counts).
    on_evictable: Callable[[Activity], None] | None = None
    heap_entry: tuple[tuple[bool, float], int, Activity] | None = None
    proven: bool = False  # a productive command succeeded: evicted after those without
    alive: Callable[[], bool] | None = None  # the socket, asked before evicting for it
    errors: int = 0  # error replies so far (relay.smtp.gate: hard_errors)
    junk: int = 0  # NOOP/RSET/VRFY/EXPN/HELP so far
    quiet: bool = False  # admitted under stress, no command yet: counted, not logged

    # --- called by the session -----------------------------------------------------

    def busy(self) -> None:
        self.phase = BUSY

    def waiting(self, *, productive: bool = True) -> None:
        """Back to waiting for the client; an unproductive command keeps the old clock."""
        now = time.monotonic()
        if productive or self.phase == PREAMBLE:
            self.since = now
            self.proven = self.proven or self.phase == BUSY
        self.phase = WAITING
        if self.on_evictable is not None:
            self.on_evictable(self)

    def data_begins(self) -> None:
        now = time.monotonic()
        self.phase = DATA
        self.data_started = self.last_byte = self.since = now
        self.data_bytes = 0
        self.samples.clear()
        self.samples.append((now, 0))

    def data_received(self, n: int) -> None:
        self.data_bytes += n
        self.last_byte = time.monotonic()

    # --- read by the gate ----------------------------------------------------------

    def writing(self, stuck: bool) -> None:
        """A reply waits for the client to read (pipelining without reading): the
        client's turn, timed and evictable like a wait for a command."""
        self.writing_since = time.monotonic() if stuck else None
        if stuck and self.on_evictable is not None:
            self.on_evictable(self)

    @property
    def evictable(self) -> bool:
        return self.phase == WAITING or self.writing_since is not None

    @property
    def idle_since(self) -> float:
        """When the wait the gate would evict for began."""
        return self.writing_since if self.writing_since is not None else self.since

    @property
    def evict_key(self) -> tuple[bool, float]:
        """Eviction order: sessions that never did anything useful first (a flood's),
        then by how long they have waited."""
        return (self.proven, self.idle_since)

    def idle_for(self, now: float) -> float:
        if self.writing_since is not None:
            return now - self.writing_since
        if self.phase == WAITING:
            return now - self.since
        if self.phase == DATA:
            return now - self.last_byte
        return 0.0

    def overdue(
        self, now: float, limits: Limits, idle_limit: float
    ) -> tuple[str, str, Reply, dict[str, Any]] | None:
        """Whether the sweeper must close this session now: (log event, metrics outcome,
        final reply, log fields), or None. Takes a data-rate sample while in DATA."""
        if self.phase in (BUSY, PREAMBLE) and self.writing_since is None:
            return None
        if self.idle_for(now) > idle_limit:
            fields = {"phase": self.phase, "idle": round(self.idle_for(now), 1)}
            return "smtp.session.timeout", "timeout", replies.TIMEOUT, fields
        if self.phase != DATA or limits.min_data_rate <= 0:
            return None
        self.samples.append((now, self.data_bytes))
        rate = self.data_rate(now, limits)
        if rate is not None and rate < limits.min_data_rate:
            fields = {"rate": round(rate, 1), "received": self.data_bytes}
            return "smtp.data.too_slow", "too_slow", replies.TOO_SLOW, fields
        return None

    def data_rate(self, now: float, limits: Limits) -> float | None:
        """Bytes/s over the window; None while still in the grace period."""
        if self.phase != DATA or now - self.data_started < limits.data_rate_grace:
            return None
        horizon = now - limits.data_rate_window
        while len(self.samples) > 1 and self.samples[1][0] <= horizon:
            self.samples.popleft()
        t0, b0 = self.samples[0]
        span = now - t0
        return (self.data_bytes - b0) / span if span > 0 else None



SILENT = Reply(421, "4.7.0", "")  # screen(): close without a reply (far over the rate)


def socket_alive(sock: socket.socket | Any) -> bool:
    """False if the peer has already closed or reset the connection (a peek, no read)."""
    try:
        probe = socket.socket(fileno=sock.fileno())
    except OSError:
        return False
    try:
        return probe.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) != b""
    except (BlockingIOError, InterruptedError):
        return True  # nothing to read yet: alive
    except OSError:
        return False  # ECONNRESET and the like
    finally:
        probe.detach()
