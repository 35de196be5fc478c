"""Delivery workers as child processes of ``relay serve`` (``delivery.processes``).

The SMTP side and the delivery side each keep an event loop busy; in one process they
share one core and one GIL. As separate processes (the way Postfix splits smtpd from its
delivery agents) they use two cores, and they already coordinate through the database
alone: the children are plain ``relay worker`` processes, restarted if they die.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys

import structlog

log = structlog.get_logger("relay.supervisor")
RESTART_DELAY = 1.0


class WorkerProcesses:
    def __init__(self, count: int, config: str | None) -> None:
        self.count = count
        self.argv = [
            sys.executable,
            "-m",
            "relay",
            *(["--config", config] if config else []),
            "worker",
        ]
        self._procs: list[asyncio.subprocess.Process | None] = [None] * count
        self._watchers: list[asyncio.Task[None]] = []
        # An Event rather than a bool: it is read again after each await (stop() runs
        # meanwhile), which a type checker's narrowing of a plain attribute would not see.
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        for slot in range(self.count):
            await self._spawn(slot)
            self._watchers.append(asyncio.create_task(self._watch(slot)))

    async def _spawn(self, slot: int) -> None:
        proc = await asyncio.create_subprocess_exec(*self.argv, env=os.environ.copy())
        self._procs[slot] = proc
        log.info("worker.process.started", slot=slot, pid=proc.pid)

    async def _watch(self, slot: int) -> None:
        while not self._stopping.is_set():
            proc = self._procs[slot]
            assert proc is not None
            code = await proc.wait()
            if self._stopping.is_set():
                return
            log.error("worker.process.exited", slot=slot, code=code)
            await asyncio.sleep(RESTART_DELAY)
            if not self._stopping.is_set():
                await self._spawn(slot)

    async def stop(self, grace: float = 30.0) -> None:
        """SIGTERM: each worker finishes its in-flight deliveries, then exits."""
        self._stopping.set()
        live = [p for p in self._procs if p is not None and p.returncode is None]
        for proc in live:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        if live:
            await asyncio.wait(
                [asyncio.create_task(p.wait()) for p in live], timeout=grace
            )
            for proc in live:
                if proc.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
        for task in self._watchers:
            task.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)
