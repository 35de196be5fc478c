"""``smtp.acceptors``: `relay serve` with more SMTP processes on its port (SO_REUSEPORT),
each committing through the one ledger, so the hash chain stays one unbroken chain."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys

import pytest

from relay.smtp.listener import bind
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


def _listeners(port: int) -> int:
    """Listening IPv4 sockets on ``port`` (SO_REUSEPORT: one line per process)."""
    with open("/proc/net/tcp") as f:
        rows = [line.split() for line in f.readlines()[1:]]
    return sum(1 for r in rows if r[3] == "0A" and int(r[1].split(":")[1], 16) == port)


def test_reuse_port_lets_two_listeners_share_a_port() -> None:
    port = free_port()
    first = bind("127.0.0.1", port, 8, reuse_port=True)
    try:
        second = bind("127.0.0.1", port, 8, reuse_port=True)
        for sock in second:
            sock.close()
        with pytest.raises(OSError):  # without the option the port stays ours alone
            bind("127.0.0.1", port, 8)
    finally:
        for sock in first:
            sock.close()
    assert all(s.fileno() == -1 for s in first)
    assert socket.SO_REUSEPORT  # the platforms we ship on have it


@pytest.mark.slow
async def test_serve_with_two_acceptors_accepts_delivers_and_chains(db_url, sink, tmp_path) -> None:
    port = free_port()
    config = write_settings(
        tmp_path / "relay.toml",
        relay={"domain": DOMAIN},
        smtp={"listen": f"127.0.0.1:{port}", "acceptors": 2},
        database={"url": db_url},
        delivery={"smarthost": f"127.0.0.1:{sink.port}", "poll_interval": "0.2s",
                  "retry": ["1s"]},
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
    count = 12
    try:
        await wait_for_banner(port)
        for _ in range(600):  # the child binds once it has started (a few s of CPU)
            if _listeners(port) >= 2:
                break
            await asyncio.sleep(0.1)
        assert _listeners(port) == 2
        for i in range(count):
            code, text = await send(port, BUYER, [alias], message(BUYER, alias, f"m{i}").as_bytes())
            assert code == 250, text
        got = await sink.wait_for(count, timeout=30)
        assert sorted(m.rcpt_tos[0] for m in got) == [SELLER] * count
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err_bytes = await asyncio.wait_for(proc.communicate(), 60)
    log = err_bytes.decode()
    assert proc.returncode == 0, log[-2000:]
    assert "acceptor.process.started" in log
    assert "worker.process.exited" not in log  # the child stopped on purpose, not crashed
    code, out, err = await relay_cli(config, "archive", "verify")
    assert code == 0, out + err
