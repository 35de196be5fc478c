"""Log lines under stress: a flood is counted, and the counts logged as one line.

Under stress a session that never sends a command gets no log line of its own (no start,
end, eviction or timeout), and neither does a connection the listener sheds before it
becomes a session: each is counted, and the counts go out as one ``smtp.gate.summary``
line every ``SUMMARY_EVERY`` seconds. A flood must not cost the relay more per
connection than it costs the attacker, and three log lines did. The gate
(relay.smtp.gate) owns one of these and asks it whether to be quiet.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import structlog

log = structlog.get_logger("relay.smtp")

SUMMARY_EVERY = 10.0  # seconds between two smtp.gate.summary lines (when there is news)
SHED_QUIET = 50  # connections shed by the listener within a summary period: a flood


class QuietLog:
    """Events counted instead of logged, and the summary line that reports them."""

    def __init__(self) -> None:
        self.tally: Counter[str] = Counter()  # events counted, not logged (quiet sessions)
        self._shed = 0  # connections the listener shed since the last summary
        self._quiet_until = 0.0
        self._summary_at = time.monotonic() + SUMMARY_EVERY

    @property
    def flooded(self) -> bool:
        """The listener shed many connections lately: a flood is on."""
        return time.monotonic() < self._quiet_until

    def shed(self, event: str) -> None:
        """The listener dropped a connection before it became a session: counted; many
        of them make the gate quiet for a while."""
        self.tally[event] += 1
        self._shed += 1
        if self._shed >= SHED_QUIET:
            self._quiet_until = time.monotonic() + SUMMARY_EVERY

    def note(self, event: str, session: str | None, **fields: Any) -> None:
        """Log ``event`` for ``session``, or only count it (``session`` None: a quiet
        session, or none at all)."""
        if session is None:
            self.tally[event] += 1
            return
        log.info(event, session=session, **fields)

    def summarise(self, *, force: bool, now: float | None, **state: Any) -> None:
        """One line with what was counted instead of logged (and the gate's ``state``),
        every SUMMARY_EVERY s."""
        now = time.monotonic() if now is None else now
        if not self.tally or (not force and now < self._summary_at):
            return
        self._summary_at = now + SUMMARY_EVERY
        counts = {event.replace(".", "_"): n for event, n in sorted(self.tally.items())}
        self.tally.clear()
        self._shed = 0
        log.info("smtp.gate.summary", **state, **counts)
