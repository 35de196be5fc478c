"""/readyz over real HTTP reports the content worker processes (policy.workers): not
ready until every worker has started and answered, and again not ready when one dies,
until its replacements have."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from typing import Any

from relay import health
from tests.helpers import running_relay
from tests.ops.support import http_get


async def _readyz_until(port: int, ready: bool, timeout: float = 60.0) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        status, body = await http_get(port, "/readyz")
        answer: dict[str, Any] = json.loads(body)
        assert (status == 200) is answer["ready"], body
        if answer["ready"] is ready:
            return answer
        assert loop.time() < deadline, f"/readyz never became ready={ready}: {body}"
        await asyncio.sleep(0.05)


async def test_readyz_waits_for_every_content_worker(make_settings, monkeypatch) -> None:
    monkeypatch.setattr(health, "READY_WAIT", 0.0)  # answer at once: "not yet" is visible
    settings = make_settings(metrics={"listen": "127.0.0.1:0"}, policy={"workers": 2})
    async with running_relay(settings, worker=False) as relay:
        port = relay.ops.port
        status, body = await http_get(port, "/readyz")  # the workers not yet asked
        checks = json.loads(body)["checks"]
        assert status == 503 and checks["policy_workers"] == [False, "starting 2 worker(s)"]
        assert all(ok for name, (ok, _) in checks.items() if name != "policy_workers"), body
        answer = await _readyz_until(port, True)
        assert answer["checks"]["policy_workers"] == [True, "2 worker(s) answered"]

        content = relay.runner.content
        dead = await content.run(os.getpid)
        os.kill(dead, signal.SIGKILL)  # a worker dies (a decoder crash, the OOM killer)
        answer = await _readyz_until(port, False)
        assert answer["checks"]["policy_workers"][0] is False, answer
        answer = await _readyz_until(port, True)  # replaced and answering again
        assert answer["checks"]["policy_workers"] == [True, "2 worker(s) answered"]
        assert await content.run(os.getpid) != dead


async def test_readyz_with_the_policy_in_threads(make_settings) -> None:
    settings = make_settings(metrics={"listen": "127.0.0.1:0"}, policy={"workers": 0})
    async with running_relay(settings, worker=False) as relay:
        status, body = await http_get(relay.ops.port, "/readyz")
    assert status == 200, body
    assert json.loads(body)["checks"]["policy_workers"] == [
        True, "in this process (policy.workers = 0)"]  # fmt: skip
