"""Message content work off the event loop, each message within a CPU and memory budget.

Everything that reads a message's content (intake, the policy, the rewrite, search text)
is CPU work on input a stranger controls. On the event loop it would stall every other
session; in a thread of the relay's process it still competes with the loop for the GIL
(every socket read of every session then waits for the switch interval). So by default
it runs in ``policy.workers`` processes (ProcessRunner) that each hold their own loaded
engine (a two-core host then uses both cores; only the message bytes, the small context
and the result cross the process boundary). ``policy.workers = 0`` runs it in threads
(ContentRunner), for development.

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
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from relay import malloc
from relay.core import replies
from relay.core.errors import BudgetExceeded as BudgetExceeded
from relay.policy.language import warm
from relay.policy.model import PolicyContext, Verdict

T = TypeVar("T")


class _Engine(Protocol):
    """What the runner needs of relay.policy.PolicyEngine (imported by workers only)."""

    def evaluate(self, raw: bytes, ctx: PolicyContext) -> Verdict: ...


_ENGINE: _Engine | None = None
_PRELOADED: _Engine | None = None  # the shipped policy, loaded by the fork server
_MB = 1024 * 1024


class _CpuOver(BaseException):  # outside relay.core.errors on purpose (see there)
    """Raised inside the worker when its CPU budget is spent. A BaseException so that the
    ``except Exception`` of parsers and of the policy engine cannot swallow it."""


@dataclass(frozen=True)
class Budget:
    cpu_seconds: float = 2.0
    memory_bytes: int = 256 * _MB

    @classmethod
    def of(cls, message: Any) -> Budget:
        """From the ``[message]`` settings (relay.settings.MessageSection)."""
        return cls(message.cpu_budget.total_seconds(), message.memory_budget_mb * _MB)

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


class Runner(Protocol):
    """Where content work runs: ContentRunner (threads) or ProcessRunner (processes)."""

    async def run(self, fn: Callable[..., T], *args: Any) -> T: ...


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


_BASE_RSS = 0


def preload() -> None:
    """Run once in the workers' fork server (relay.policy_preload), before it forks any
    worker: the content stages' imports, the shipped policy and the language model (2-3 s
    of CPU) are then paid once per relay, not once per worker, and a worker replacing a
    crashed one starts in milliseconds. A worker for another policy file loads its own."""
    global _PRELOADED
    try:
        _import_stages()
        from relay.policy import PolicyEngine

        _PRELOADED = PolicyEngine.load(None)
        warm()
    except Exception:  # the server must come up regardless: each worker then loads its own
        _PRELOADED = None


def _import_stages() -> None:
    import relay.bounces_in
    import relay.mail.rewrite
    import relay.pipeline
    import relay.smtp.postmaster  # noqa: F401


def _load(path: str | None, max_pixels: int) -> None:
    """A worker's start: the engine loaded once, and every content stage imported, so
    no message pays for it."""
    global _ENGINE, _BASE_RSS
    _tie_to_parent()
    malloc.tune()
    _import_stages()
    from relay.policy import PolicyEngine, images

    images.set_pixel_budget(max_pixels)
    if path is None and _PRELOADED is not None:
        _ENGINE = _PRELOADED
    else:
        _ENGINE = PolicyEngine.load(Path(path) if path else None)
    warm()
    signal.signal(signal.SIGPROF, _on_sigprof)
    malloc.trim()
    _BASE_RSS = malloc.rss()


def _tie_to_parent() -> None:
    """A worker ends with the relay: SIGTERM/SIGINT (systemd signals the whole cgroup, a
    terminal the whole process group) are left to the relay, which drains and then shuts
    the pool down; if the relay itself is killed, the kernel kills the worker. A worker's
    parent is the fork server, which outlives its last worker by design (each holds its
    liveness pipe), so the server is tied to the relay (relay.policy_preload) and each
    worker to the server: SIGKILL to the relay takes both down (PR_SET_PDEATHSIG)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent()


def die_with_parent() -> None:
    """SIGKILL this process when its parent dies; exit now if that already happened."""
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # it died before the line above
        os._exit(0)


def _address_space() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _evaluate(raw: bytes, ctx: PolicyContext) -> Verdict:
    assert _ENGINE is not None, "policy worker started without an engine"
    return _ENGINE.evaluate(raw, ctx)


def _ping() -> int:
    time.sleep(0.05)  # long enough that each idle worker takes one
    return os.getpid()


def _in_worker(budget: Budget, fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in a worker process: ITIMER_PROF for the CPU budget, RLIMIT_AS for
    memory (an allocation over it is a MemoryError here, not a larger relay)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = _address_space() + budget.memory_bytes
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    try:
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
        signal.setitimer(signal.ITIMER_PROF, budget.cpu_seconds)
        try:
            return fn(*args)
        finally:
            signal.setitimer(signal.ITIMER_PROF, 0)
            resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    except _CpuOver:
        raise budget.cpu_over() from None
    except MemoryError:
        raise budget.memory_over() from None
    finally:
        if malloc.rss() > _BASE_RSS + 16 * malloc.TRIM_AFTER:  # a large message was here
            malloc.trim()


@dataclass
class _Pool:
    """Worker processes of one configuration. Relays in one process (tests) share it, so
    its start-up (import, engine, language model: 2-4 s of CPU a worker) is paid once."""

    key: tuple[str | None, int, int]
    executor: ProcessPoolExecutor
    users: int = 0
    warming: list[Future[int]] = field(default_factory=list)  # one start-up ping a worker


_POOLS: dict[tuple[str | None, int, int], _Pool] = {}


def _context() -> multiprocessing.context.BaseContext:
    """Workers fork from a fork server, never from the relay (a process with an event loop
    and threads must not fork); the server preloads what every worker needs, once."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["relay.policy_preload"])
    return ctx


def _new_executor(key: tuple[str | None, int, int]) -> ProcessPoolExecutor:
    path, pixels, workers = key
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=_context(),
        initializer=_load,
        initargs=(path, pixels),
    )


def _acquire(key: tuple[str | None, int, int]) -> _Pool:
    for other, idle in list(_POOLS.items()):  # idle pools of another configuration go
        if other != key and idle.users == 0:
            idle.executor.shutdown(wait=False, cancel_futures=True)
            del _POOLS[other]
    pool = _POOLS.get(key)
    if pool is None:
        pool = _POOLS[key] = _Pool(key, _new_executor(key))
    pool.users += 1
    return pool


class ProcessRunner:
    """``await runner.run(fn, *args)``: ``fn`` (a module-level function; its arguments
    and result are pickled) in a worker process, within the message budget. Content CPU
    then never competes with the event loop for the GIL, and the memory budget holds.

    A worker that dies (a crash in a decoder, the kernel's OOM killer) breaks the whole
    executor: it is replaced, and the call retried once on the fresh one; a message that
    kills a worker twice is refused as unprocessable."""

    def __init__(self, pool: _Pool, budget: Budget) -> None:
        self.pool = pool
        self.budget = budget
        self.workers = pool.key[2]

    async def start(self) -> None:
        """Start every worker now, in the background: the first message should not pay
        for a worker's start (imports, engine, language model: 2-4 s of CPU), and the
        banner should not wait for it either (a message meanwhile waits in the queue).
        A task submitted while no worker is idle spawns one, so N pings start N."""
        if not self.pool.warming:
            self.pool.warming = [self.pool.executor.submit(_ping) for _ in range(self.workers)]

    async def ready(self) -> None:
        """Until every worker has started and answered (tests that time sessions)."""
        await self.start()
        seen = set(await asyncio.gather(*(asyncio.wrap_future(f) for f in self.pool.warming)))
        loop = asyncio.get_running_loop()
        while len(seen) < self.workers:  # one worker answered for a sibling still loading
            pings = [loop.run_in_executor(self.pool.executor, _ping) for _ in range(self.workers)]
            seen.update(await asyncio.gather(*pings))

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        for attempt in (1, 2):
            executor = self.pool.executor
            try:
                return await loop.run_in_executor(executor, _in_worker, self.budget, fn, *args)
            except BrokenProcessPool:
                if self.pool.executor is executor:  # the first to notice replaces it
                    executor.shutdown(wait=False, cancel_futures=True)
                    self.pool.executor = _new_executor(self.pool.key)
                    self.pool.warming = []
                    await self.start()
                if attempt == 2:
                    raise BudgetExceeded(replies.UNPROCESSABLE) from None
        raise AssertionError("unreachable")

    def close(self) -> None:
        """This user is done; the pool stays for the next relay in this process (ended
        at interpreter exit, or when another configuration needs the cores)."""
        self.pool.users = max(0, self.pool.users - 1)


async def workers_ready() -> None:
    """Until every content worker of this process has started (tests that time sessions
    wait for it: a worker still loading is start-up cost, not the message's)."""
    for pool in list(_POOLS.values()):
        await ProcessRunner(pool, Budget()).ready()


class PolicyRunner:
    """``await runner.evaluate(raw, ctx)`` off the loop, within the message budget; the
    wall-clock bound is for our own trouble (an overloaded pool), so it stays a 451.

    With ``workers`` > 0 (the default setting) the policy runs in worker processes, and
    ``content`` is a ProcessRunner on the same processes for the pipeline's other content
    stages (intake, rewrite). With 0 it runs in threads of this process: no memory
    budget, and its CPU competes with the event loop; for development only."""

    def __init__(
        self,
        engine: _Engine,
        *,
        workers: int = 0,
        path: Path | None = None,
        timeout: float = 30.0,
        budget: Budget | None = None,
        max_pixels: int | None = None,
    ) -> None:
        from relay.policy import images

        self.engine: _Engine | None = engine
        self.timeout = timeout
        self.budget = budget or Budget()
        pixels = max_pixels or images.pixel_budget()
        self.content: ProcessRunner | None = None
        self.executor: Executor | None = None
        if workers > 0:
            self.engine = None  # loaded here only to validate the file: the workers hold it
            pool = _acquire((str(path) if path else None, pixels, workers))
            self.content = ProcessRunner(pool, self.budget)
        else:
            images.set_pixel_budget(pixels)
            warm()  # ~0.6 s: pay it at start-up, not in the first seller's SMTP session
            self.executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="policy")

    async def start(self) -> None:
        if self.content is not None:
            await self.content.start()

    async def evaluate(self, raw: bytes, ctx: PolicyContext) -> Verdict:
        if self.content is not None:
            return await asyncio.wait_for(self.content.run(_evaluate, raw, ctx), self.timeout)
        assert self.engine is not None  # kept when there are no worker processes
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(
            self.executor,
            _budgeted,
            self.budget,
            self.engine.evaluate,
            raw,
            ctx,
        )
        return await asyncio.wait_for(fut, self.timeout)

    def close(self) -> None:
        if self.content is not None:
            self.content.close()
        if self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)
