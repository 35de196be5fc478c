"""``delivery.processes``: `relay serve` with its delivery worker in a child process."""

from __future__ import annotations

import asyncio
import json
import signal
import sys

import pytest

from tests.helpers import (
    BUYER,
    DOMAIN,
    ORDER,
    SELLER,
    free_port,
    message,
    relay_cli,
    send,
    wait_for_banner,
    write_settings,
)

pytestmark = pytest.mark.slow


async def test_serve_runs_and_stops_its_worker_processes(db_url, sink, tmp_path) -> None:
    port = free_port()
    config = write_settings(
        tmp_path / "relay.toml",
        relay={"domain": DOMAIN},
        smtp={"listen": f"127.0.0.1:{port}"},
        database={"url": db_url},
        delivery={"smarthost": f"127.0.0.1:{sink.port}", "processes": 1,
                  "poll_interval": "0.2s", "retry": ["1s"]},
        policy={"enabled": False},
        auth={"mode": "off"},
        log={"format": "json"},
    )  # fmt: skip
    code, out, err = await relay_cli(config, "order", "create", ORDER, "--buyer", BUYER,
                                     "--seller", SELLER, "--json")  # fmt: skip
    assert code == 0, err
    alias = json.loads(out)["seller_alias"]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "relay", "--config", str(config), "serve",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        await wait_for_banner(port)
        for i in range(5):
            code, text = await send(port, BUYER, [alias], message(BUYER, alias, f"m{i}").as_bytes())
            assert code == 250, text
        got = await sink.wait_for(5, timeout=20)
        assert sorted(m.rcpt_tos[0] for m in got) == [SELLER] * 5
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err_bytes = await asyncio.wait_for(proc.communicate(), 40)
    assert proc.returncode == 0, err_bytes.decode()[-2000:]
    log = err_bytes.decode()
    assert "worker.process.started" in log
    assert "worker.process.exited" not in log  # stopped on purpose, not crashed
