"""Running the content policy off the event loop: in threads, or in worker processes.

The policy is pure CPU work (MIME decoding, HTML parsing, regexes). In a thread it keeps
the loop responsive but still shares one GIL with SMTP and the database; with
``policy.workers = N`` it runs in N processes, each holding its own loaded engine, so a
two-core host uses both cores. Only the message bytes and the small context cross the
process boundary, never the engine.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

from relay.policy.language import warm
from relay.policy.model import PolicyContext, Verdict

_ENGINE: object | None = None


def _load(path: str | None) -> None:
    global _ENGINE
    from relay.policy import PolicyEngine

    _ENGINE = PolicyEngine.load(Path(path) if path else None)
    warm()


def _evaluate_in_worker(raw: bytes, ctx: PolicyContext) -> Verdict:
    assert _ENGINE is not None, "policy worker started without an engine"
    return _ENGINE.evaluate(raw, ctx)  # type: ignore[attr-defined, no-any-return]


class PolicyRunner:
    """``await runner.evaluate(raw, ctx)``, with a time bound so a pathological message
    costs one 451 instead of a stuck session."""

    def __init__(
        self, engine: object, *, workers: int = 0, path: Path | None = None, timeout: float = 30.0
    ) -> None:
        self.engine = engine
        self.timeout = timeout
        self._process = workers > 0
        self.executor: Executor
        if not self._process:
            warm()  # ~0.6 s: pay it at start-up, not in the first seller's SMTP session
        if self._process:
            self.executor = ProcessPoolExecutor(
                max_workers=workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_load,
                initargs=(str(path) if path else None,),
            )
        else:
            self.executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="policy")

    async def evaluate(self, raw: bytes, ctx: PolicyContext) -> Verdict:
        loop = asyncio.get_running_loop()
        if self._process:
            fut = loop.run_in_executor(self.executor, _evaluate_in_worker, raw, ctx)
        else:
            fut = loop.run_in_executor(self.executor, self.engine.evaluate, raw, ctx)  # type: ignore[attr-defined]
        return await asyncio.wait_for(fut, self.timeout)

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
