"""Content workers die with their relay (relay.policy_pool): a SIGKILLed ``relay serve``
leaves no worker process behind.

A worker waits on the executor's call queue, whose write end it holds itself, so it never
sees its parent go: tests that killed relays left workers (each with the policy engine
loaded) running for 15 minutes and more. The worker's initializer asks the kernel for a
SIGKILL when its parent dies (PR_SET_PDEATHSIG), and one that starts after the relay has
already died exits at once. Both moments are tried: while the workers are still loading,
and once they are idle.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import DOMAIN, free_port, write_settings
from tests.ops.support import RelayProcess

# two real relays and their workers' start (2-4 s of CPU each): ~20 s a case on 2 cores
pytestmark = [pytest.mark.skipif(sys.platform != "linux", reason="reads /proc"), pytest.mark.slow]


def _stat(pid: int) -> tuple[str, int, float] | None:
    """(state, parent pid, CPU seconds) of a process; None once it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return fields[0], int(fields[1]), (int(fields[11]) + int(fields[12])) / ticks


def alive(pid: int) -> bool:
    """Running, sleeping or stopped: a zombie waiting for its reaper has already died."""
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def descendants(root: int) -> set[int]:
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(int(entry))) is not None:
            parents[int(entry)] = stat[1]
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - found
        found |= frontier
    return found


def workers_of(pid: int) -> set[int]:
    """The content workers: children of multiprocessing's fork server, itself the relay's
    child (a forked worker keeps the server's command line)."""
    out = set()
    for child in descendants(pid):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        stat = _stat(child)
        if b"forkserver" in cmdline and stat is not None and stat[1] != pid:
            out.add(child)
    return out


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")[:120].decode()
    except OSError:
        return "?"


async def until(what: str, check: object, timeout: float, show: object = None) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        seen = show() if callable(show) else ""
        assert time.monotonic() < deadline, f"not {what} after {timeout} s {seen}"
        await asyncio.sleep(0.1)


async def idle(pids: set[int], timeout: float = 120) -> None:
    """Until every worker has loaded (its CPU time stops growing while it sleeps). A
    worker forked from the preloaded fork server has almost nothing left to load."""
    deadline = time.monotonic() + timeout
    before = {pid: _stat(pid) for pid in pids}
    while True:
        await asyncio.sleep(1.0)
        now = {pid: _stat(pid) for pid in pids}
        settled = all(
            (a := before[pid]) is not None and (b := now[pid]) is not None
            and b[0] == "S" and b[2] == a[2]
            for pid in pids
        )  # fmt: skip
        if settled:
            return
        assert time.monotonic() < deadline, f"workers still busy after {timeout} s: {now}"
        before = now


@pytest.mark.parametrize("when", ["loading", "idle"])
async def test_workers_die_with_a_killed_relay(tmp_path: Path, when: str) -> None:
    port = free_port()
    config = write_settings(
        tmp_path / "relay.toml",
        relay={"domain": DOMAIN, "marketplace": "Marketplace"},
        database={"url": f"sqlite+aiosqlite:///{tmp_path}/relay.sqlite3"},
        auth={"mode": "off"},
        log={"format": "json", "level": "info"},
        smtp={"listen": f"127.0.0.1:{port}"},
        policy={"enabled": True, "workers": 2},
    )
    relay = RelayProcess(config, tmp_path / "relay.log", "serve", "--no-worker", port=port)
    await relay.start()
    assert relay.proc is not None
    pid = relay.proc.pid
    everything: set[int] = set()
    try:
        await until("two workers", lambda: len(workers_of(pid)) >= 2, 60)
        workers = workers_of(pid)
        if when == "idle":
            await idle(workers)
        everything = descendants(pid)  # the workers and multiprocessing's resource tracker
        relay.signal(signal.SIGKILL)
        await relay.proc.wait()
        killed = time.monotonic()
        left = lambda: {p: _cmdline(p) for p in everything if alive(p)}  # noqa: E731
        await until("gone", lambda: not left(), 10, left)
        gone_after = time.monotonic() - killed
    finally:
        if relay.proc.returncode is None:
            relay.proc.kill()
            await relay.proc.wait()
        for leftover in everything or workers_of(pid):  # a failed test leaves nothing
            with contextlib.suppress(ProcessLookupError):
                os.kill(leftover, signal.SIGKILL)
    print(f"\n{when}: {len(workers)} workers and their helpers gone {gone_after:.2f} s after")
