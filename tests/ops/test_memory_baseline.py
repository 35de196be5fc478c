"""Memory of a real ``relay serve`` returns to its baseline after a burst of hostile
messages: the relay's resident memory, its content worker processes' included, must not
stay at the peak of the worst burst it met (the issue saw ~1.5 GB after a battery).

The shapes are those of tests/core/test_hostile_messages.py (images under and over the
pixel budget, tens of thousands of parts, megabyte headers, encoded-word floods), sent
three at a time. The baseline is taken after one warm-up round (first-use costs, such as
imported image plugins and compiled patterns, are not a leak), and RSS is summed over the
process tree from /proc.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import pytest

from tests.core.test_hostile_messages import SHAPES, send_raw
from tests.helpers import BUYER, DOMAIN, ORDER, SELLER, free_port, relay_cli, write_settings
from tests.ops.support import RelayProcess

MARGIN = 64 * 1024 * 1024  # what the tree may keep above its baseline after the burst
ROUNDS = 2  # burst rounds after the warm-up round
PARALLEL = 3


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (worker processes of every kind)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def rss(pid: int) -> int:
    """VmRSS of the process tree in bytes."""
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


async def burst(port: int, alias: str, shapes: list[bytes]) -> list[int]:
    """Every message sent, PARALLEL at a time; the reply codes."""
    gate = asyncio.Semaphore(PARALLEL)

    async def one(raw: bytes) -> int:
        async with gate:
            code, _ = await asyncio.to_thread(send_raw, port, SELLER, alias, raw)
            return code

    return list(await asyncio.gather(*(one(raw) for raw in shapes)))


@pytest.mark.slow
async def test_rss_returns_to_baseline_after_hostile_burst(db_url, sink, tmp_path: Path) -> None:
    port = free_port()
    config = write_settings(
        tmp_path / "relay.toml",
        relay={"domain": DOMAIN},
        smtp={"listen": f"127.0.0.1:{port}"},
        database={"url": db_url},
        delivery={"smarthost": f"127.0.0.1:{sink.port}", "poll_interval": "0.2s"},
        auth={"mode": "off"},
        log={"format": "json"},
        # one order takes the whole burst: its abuse limits would refuse it first
        limits={"per_order_day": 0, "proactive_per_order": 0, "archive_bytes_per_party_day": 0},
    )
    code, out, err = await relay_cli(
        config, "order", "create", ORDER, "--buyer", BUYER, "--seller", SELLER, "--json"
    )
    assert code == 0, err
    alias = json.loads(out)["buyer_alias"]
    relay = RelayProcess(config, tmp_path / "relay.log", port=port)
    await relay.start()
    assert relay.proc is not None
    pid = relay.proc.pid
    messages = [shape.make() for shape in SHAPES]
    expected = [shape.code for shape in SHAPES]
    try:
        assert await burst(port, alias, messages) == expected  # warm-up round
        await asyncio.sleep(2)
        baseline = rss(pid)
        peak = baseline
        sending = asyncio.ensure_future(burst(port, alias, messages * ROUNDS))
        while not sending.done():
            peak = max(peak, rss(pid))
            await asyncio.sleep(0.05)
        assert await sending == expected * ROUNDS
        deadline, after = time.monotonic() + 20, rss(pid)
        while after > baseline + MARGIN and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            after = rss(pid)
        mb = 1024 * 1024
        figures = f"baseline {baseline // mb} MB, peak {peak // mb} MB, after {after // mb} MB"
        print(figures, f"({len(tree(pid))} processes)")
        assert after < baseline + MARGIN, figures
    finally:
        assert await relay.stop() == 0
