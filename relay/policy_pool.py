"""Message content work off the event loop, each message within a CPU and memory budget.

Everything that reads a message's content (intake, the policy, the rewrite, search text)
is CPU work on input a stranger controls. On the event loop it would stall every other
session; so it runs here, in threads, or for the policy in ``policy.workers`` processes
that each hold their own loaded engine (a two-core host then uses both cores; only the
message bytes and the small context cross the process boundary).

Budgets (``[message]`` settings): a message that costs more than ``cpu_budget`` of CPU
time, or (in a worker process) more than ``memory_budget_mb`` of memory, is stopped and
refused permanently, ``554 5.6.0`` / ``552 5.3.4`` naming the setting: the overrun is the
message's fault, and a 451 would only invite the same message again.

- In a thread, the CPU clock of that thread is watched (``time.pthread_getcpuclockid``)
  and an exception is raised in it asynchronously when it is over budget. It lands at the
  next Python instruction, so work inside one long C call finishes first; the structural
  limits (relay.mail.limits) and the image pixel budget keep such calls short.
- In a worker process, an ``ITIMER_PROF`` timer stops the evaluation after its CPU budget,
  and ``RLIMIT_AS`` caps the memory it may add: an allocation over it fails with
  MemoryError instead of growing the relay.
"""

from __future__ import annotations

import asyncio
import ctypes
import multiprocessing
import os
import resource
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from relay import replies
from relay.policy.language import warm
from relay.policy.model import PolicyContext, Verdict
from relay.replies import Reply

T = TypeVar("T")
_ENGINE: object | None = None
_MB = 1024 * 1024


class _CpuOver(BaseException):
    """Raised inside the worker when its CPU budget is spent. A BaseException so that the
    ``except Exception`` of parsers and of the policy engine cannot swallow it."""


class BudgetExceeded(Exception):
    """A message went over its CPU or memory budget; ``reply`` is the permanent refusal."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.text)
        self.reply = reply


@dataclass(frozen=True)
class Budget:
    cpu_seconds: float = 2.0
    memory_bytes: int = 256 * _MB

    def cpu_over(self) -> BudgetExceeded:
        return BudgetExceeded(
            replies.CPU_BUDGET.with_text(
                f"Message refused: checking it needs more than {self.cpu_seconds:g} s of CPU"
                " (setting message.cpu_budget)"
            )
        )

    def memory_over(self) -> BudgetExceeded:
        return BudgetExceeded(
            replies.MEMORY_BUDGET.with_text(
                f"Message refused: checking it needs more than {self.memory_bytes // _MB} MB"
                " of memory (setting message.memory_budget_mb)"
            )
        )


# -- threads: a watchdog over per-thread CPU clocks ----------------------------------------


@dataclass
class _Job:
    clock: int
    limit: float
    fired: bool = False


@dataclass
class _Watchdog:
    """One daemon thread for the process; polls the CPU clock of every budgeted job."""

    interval: float = 0.02
    jobs: dict[int, _Job] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    thread: threading.Thread | None = None

    def enter(self, budget: float) -> None:
        ident = threading.get_ident()
        clock = time.pthread_getcpuclockid(ident)
        with self.lock:
            self.jobs[ident] = _Job(clock, time.clock_gettime(clock) + budget)
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="cpu-budget", daemon=True)
                self.thread.start()

    def leave(self) -> None:
        ident = threading.get_ident()
        with self.lock:
            job = self.jobs.pop(ident, None)
            if job is not None and job.fired:  # not delivered yet: never let it escape
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), None)

    def _run(self) -> None:
        while True:
            time.sleep(self.interval)
            with self.lock:
                for ident, job in self.jobs.items():
                    if job.fired:
                        continue
                    try:
                        used = time.clock_gettime(job.clock)
                    except OSError:
                        continue
                    if used > job.limit:
                        job.fired = True
                        ctypes.pythonapi.PyThreadState_SetAsyncExc(
                            ctypes.c_ulong(ident), ctypes.py_object(_CpuOver)
                        )


_WATCHDOG = _Watchdog()


def _budgeted(budget: Budget, fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn(*args)`` in this (pool) thread under the CPU budget."""
    try:
        _WATCHDOG.enter(budget.cpu_seconds)
        try:
            return fn(*args)
        finally:
            _WATCHDOG.leave()
    except _CpuOver:
        raise budget.cpu_over() from None
    except MemoryError:
        raise budget.memory_over() from None


class ContentRunner:
    """``await runner.run(fn, *args)``: ``fn`` in a worker thread within the budget."""

    def __init__(self, budget: Budget, *, workers: int = 2) -> None:
        self.budget = budget
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="content")

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, _budgeted, self.budget, fn, *args)

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


_SHARED: dict[tuple[Budget, int], ContentRunner] = {}


def shared_runner(budget: Budget, workers: int = 2) -> ContentRunner:
    """One runner per budget for the whole process (relays in one process share it)."""
    key = (budget, workers)
    if key not in _SHARED:
        _SHARED[key] = ContentRunner(budget, workers=workers)
    return _SHARED[key]


# -- worker processes: CPU timer and address-space limit -----------------------------------


def _on_sigprof(signum: int, frame: object) -> None:
    raise _CpuOver


def _load(path: str | None, max_pixels: int) -> None:
    global _ENGINE
    from relay.policy import PolicyEngine, images

    images.set_pixel_budget(max_pixels)
    _ENGINE = PolicyEngine.load(Path(path) if path else None)
    warm()
    signal.signal(signal.SIGPROF, _on_sigprof)


def _address_space() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _evaluate_in_worker(raw: bytes, ctx: PolicyContext, budget: Budget) -> Verdict:
    assert _ENGINE is not None, "policy worker started without an engine"
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = _address_space() + budget.memory_bytes
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    try:
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
        signal.setitimer(signal.ITIMER_PROF, budget.cpu_seconds)
        try:
            return _ENGINE.evaluate(raw, ctx)  # type: ignore[attr-defined, no-any-return]
        finally:
            signal.setitimer(signal.ITIMER_PROF, 0)
            resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    except _CpuOver:
        raise budget.cpu_over() from None
    except MemoryError:
        raise budget.memory_over() from None


class PolicyRunner:
    """``await runner.evaluate(raw, ctx)`` off the loop, within the message budget; the
    wall-clock bound is for our own trouble (an overloaded pool), so it stays a 451."""

    def __init__(
        self,
        engine: object,
        *,
        workers: int = 0,
        path: Path | None = None,
        timeout: float = 30.0,
        budget: Budget | None = None,
        max_pixels: int | None = None,
    ) -> None:
        from relay.policy import images

        self.engine = engine
        self.timeout = timeout
        self.budget = budget or Budget()
        pixels = max_pixels or images.pixel_budget()
        self._process = workers > 0
        self.executor: Executor
        if self._process:
            self.executor = ProcessPoolExecutor(
                max_workers=workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_load,
                initargs=(str(path) if path else None, pixels),
            )
        else:
            images.set_pixel_budget(pixels)
            warm()  # ~0.6 s: pay it at start-up, not in the first seller's SMTP session
            self.executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="policy")

    async def evaluate(self, raw: bytes, ctx: PolicyContext) -> Verdict:
        loop = asyncio.get_running_loop()
        if self._process:
            fut = loop.run_in_executor(
                self.executor, _evaluate_in_worker, raw, ctx, self.budget
            )
        else:
            fut = loop.run_in_executor(
                self.executor,
                _budgeted,
                self.budget,
                self.engine.evaluate,  # type: ignore[attr-defined]
                raw,
                ctx,
            )
        return await asyncio.wait_for(fut, self.timeout)

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
