"""More SMTP acceptor processes on the relay's port (``smtp.acceptors``).

One event loop takes one core at most, and a message's SMTP side (sessions, intake, the
group commit's round trips) is most of the relay's own CPU. With ``smtp.acceptors = N``
``relay serve`` starts N - 1 more ``relay serve --no-worker`` processes that bind the
same port with SO_REUSEPORT, and the kernel spreads new connections over all of them.

They share nothing but the database: each has its own group committer and content
workers, and every commit goes through relay.store.ledger, whose lock (SQLite's write
lock, PostgreSQL's advisory lock) keeps exactly one writer of the hash chain at a time;
each session still answers 250 only after its own durable commit. The children are
started after the parent listens (a bind failure stops the parent first), serve no
/metrics of their own, and get SIGTERM (drain, then exit) when the parent stops or dies.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import sys

import structlog

from relay.supervisor import WorkerProcesses

log = structlog.get_logger("relay.supervisor")

# What a child is told: one acceptor (no grandchildren), SO_REUSEPORT, and no ops port
# (the parent's /metrics and /readyz stay the only ones on metrics.listen).
CHILD_ENV = {
    "RELAY_SMTP__ACCEPTORS": "1",
    "RELAY_SMTP__REUSE_PORT": "true",
    "RELAY_METRICS__LISTEN": "",
}


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """PR_SET_PDEATHSIG: SIGTERM the child if the parent dies (even by SIGKILL), so no
    orphan keeps accepting on the port."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


class AcceptorProcesses(WorkerProcesses):
    """``count`` SMTP-only ``relay serve --no-worker`` children, restarted if they die."""

    def __init__(self, count: int, config: str | None) -> None:
        super().__init__(count, config)
        self.argv = [
            sys.executable,
            "-m",
            "relay",
            *(["--config", config] if config else []),
            "serve",
            "--no-worker",
        ]

    async def _spawn(self, slot: int) -> None:
        proc = await asyncio.create_subprocess_exec(
            *self.argv, env={**os.environ, **CHILD_ENV}, preexec_fn=_die_with_parent
        )
        self._procs[slot] = proc
        log.info("acceptor.process.started", slot=slot, pid=proc.pid)
