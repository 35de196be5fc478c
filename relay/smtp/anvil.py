"""Connection rate per client address, as Postfix's anvil counts it.

``smtpd_client_connection_rate_limit`` is the model: connections from one client address
(the real one behind PROXY or XFORWARD; IPv6 per /64) in the last minute. Over the limit
the newcomer is told ``421 4.7.0`` and closed; far over it (twice the limit) it is closed
unanswered, which costs us one ``close``. Refusals count too, so a client that keeps
hammering stays refused, while one that backs off (as an MTA does after a 421) gets in.

A sliding window approximated by two fixed ones (the previous window's count weighted by
how much of it still overlaps): O(1) time and two integers per address, forgotten when
the address has been quiet for two windows.
"""

from __future__ import annotations

import time

from relay.core.replies import TOO_FAST as TOO_FAST


class ConnectionRate:
    """Counts connections per key over ``window`` seconds; ``limit`` 0 counts nothing."""

    def __init__(self, limit: int, window: float = 60.0) -> None:
        self.limit = limit
        self.window = window
        self._epoch = 0  # index of the current fixed window
        self._counts: dict[str, list[int]] = {}  # key -> [epoch, previous, current]

    def hit(self, key: str, now: float | None = None) -> float:
        """Count one connection from ``key``; its rate (connections per window) with it."""
        if self.limit <= 0:
            return 0.0
        now = time.monotonic() if now is None else now
        epoch = int(now // self.window)
        if epoch != self._epoch:
            self._roll(epoch)
        entry = self._counts.get(key)
        if entry is None:
            entry = self._counts[key] = [epoch, 0, 0]
        elif entry[0] != epoch:
            entry[1] = entry[2] if entry[0] == epoch - 1 else 0
            entry[2] = 0
            entry[0] = epoch
        entry[2] += 1
        overlap = 1.0 - (now % self.window) / self.window
        return entry[2] + entry[1] * overlap

    def estimate(self, key: str, now: float | None = None) -> float:
        """The rate of ``key`` as :meth:`hit` last gave it, without counting."""
        entry = self._counts.get(key)
        if entry is None or self.limit <= 0:
            return 0.0
        now = time.monotonic() if now is None else now
        epoch = int(now // self.window)
        if entry[0] == epoch:
            return entry[2] + entry[1] * (1.0 - (now % self.window) / self.window)
        if entry[0] == epoch - 1:
            return entry[2] * (1.0 - (now % self.window) / self.window)
        return 0.0

    def calm(self, rate: float) -> bool:
        """At most a tenth of the limit: a client that is served first."""
        return self.limit <= 0 or rate <= max(5, self.limit / 10)

    def over(self, rate: float) -> bool:
        return self.limit > 0 and rate > self.limit

    def far_over(self, rate: float) -> bool:
        return self.limit > 0 and rate > 2 * self.limit

    def _roll(self, epoch: int) -> None:
        """A new window: forget addresses not seen in this one's predecessor."""
        self._epoch = epoch
        stale = [k for k, entry in self._counts.items() if entry[0] < epoch - 1]
        for k in stale:
            del self._counts[k]

    def __len__(self) -> int:
        return len(self._counts)
