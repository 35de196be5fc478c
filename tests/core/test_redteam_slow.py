"""Red team: slow and greedy clients beyond tests/core/test_slow_clients.py (issue 10).

The attacker runs in a process of its own (``ATTACKER`` below), so its sockets and CPU are
not the test's: a real relay at the shipped [smtp] settings in this process, a legitimate
client timed from its connect to the final 250 while the attack goes on, and the relay's
memory and descriptors read from /proc/self.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import statistics
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import structlog
import structlog.testing
from aiosmtpd.smtp import SMTP

from relay import metrics
from relay.settings import Settings
from relay.smtp import fastinit
from relay.smtp.gate import Activity, ConnectionGate, Limits
from relay.smtp.server import RelaySMTP
from tests.core.test_slow_clients import Conn, legit, relay_with_order, with_smtp
from tests.helpers import BUYER, make_cert

# One attack per process: python -c ATTACKER MODE PORT ALIAS N. Prints "ready" once its
# connections are in place (or at once for a flood), then keeps them until killed.
ATTACKER = r"""
import asyncio, contextlib, resource, ssl, sys
mode, port, alias, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
held = []

def source(i):  # 45 connections per address: under the per-client cap of 50
    return f"127.0.{100 + i // 45 // 250}.{i // 45 % 250 + 1}"

async def connect(i):
    r, w = await asyncio.open_connection("127.0.0.1", port, local_addr=(source(i), 0))
    held.append(w)
    return r, w

async def line(r):
    return await asyncio.wait_for(r.readline(), 60)

async def ehlo(r, w):
    w.write(b"EHLO attacker.test\r\n")
    while (await line(r))[3:4] == b"-":
        pass

async def hold(i):
    r, w = await connect(i)
    await line(r)

async def tls_stall(i):
    r, w = await connect(i)
    await line(r)
    await ehlo(r, w)
    w.write(b"STARTTLS\r\n")
    await line(r)  # 220 Ready to start TLS: and not a byte of a ClientHello

async def no_reader(i):
    r, w = await connect(i)
    await line(r)
    w.write(b"EHLO attacker.test\r\n" + b"NOOP\r\n" * 100_000)  # and never read a reply

async def flood():
    count = 0
    async def one(i):
        with contextlib.suppress(OSError):
            src = (f"127.0.99.{i % 250 + 1}", 0)
            r, w = await asyncio.open_connection("127.0.0.1", port, local_addr=src)
            w.transport.abort()
    print("ready", flush=True)
    while True:
        await asyncio.gather(*(one(count + i) for i in range(50)))
        count += 50

async def main():
    if mode == "flood":
        await flood()
    work = {"hold": hold, "tls": tls_stall, "noread": no_reader}[mode]
    for start in range(0, n, 200):
        batch = range(start, min(n, start + 200))
        await asyncio.gather(*(work(i) for i in batch), return_exceptions=True)
    print("ready", len(held), flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


@contextlib.asynccontextmanager
async def attack(mode: str, port: int, alias: str, n: int = 0) -> AsyncIterator[None]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", ATTACKER, mode, str(port), alias, str(n),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        ready = await asyncio.wait_for(proc.stdout.readline(), 120)
        assert ready.startswith(b"ready"), ready
        yield
    finally:
        proc.kill()
        await proc.wait()


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def timed_legit(port: int, alias: str, rounds: int, gap: float = 0.3) -> list[float]:
    times = []
    for n in range(rounds):
        seconds, reply = await asyncio.wait_for(legit(port, alias, f"127.0.0.{2 + n % 5}"), 60)
        assert reply.startswith("250 2.0.0"), reply
        times.append(seconds)
        await asyncio.sleep(gap)
    return times


def report(name: str, times: list[float], **figures: Any) -> None:
    ms = [round(t * 1000) for t in times]
    extra = " ".join(f"{k}={v}" for k, v in figures.items())
    print(f"\n{name}: legit ms {ms} (median {statistics.median(ms)}) {extra}")


@pytest.fixture
def shipped(lite_settings: Any, tmp_path: Path) -> Settings:
    """The shipped [smtp] limits, with a certificate (STARTTLS offered)."""
    cert, key = make_cert(tmp_path)
    settings = with_smtp(lite_settings(), tls_cert=str(cert), tls_key=str(key))
    assert settings.smtp.max_connections == Settings().smtp.max_connections
    return settings


def _need_fds(n: int) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < n:
        pytest.skip(f"needs {n} descriptors, the hard limit is {hard}")


# --- the gate's bookkeeping ----------------------------------------------------------


async def test_the_longest_idle_is_found_without_scanning_every_session() -> None:
    """At the cap every newcomer evicts one session. Finding the longest idle by scanning
    all of them cost ~1 ms per newcomer at 2,000 sessions: a connect-and-drop flood kept
    the loop busy evicting and a legitimate client saw no banner in 30 s. It must not grow
    with the number of sessions (here 20,000 open, 5,000 newcomers)."""
    cap = 20_000
    gate = ConnectionGate(Limits(max_connections=cap, per_client=cap))
    closed: list[Activity] = []

    def session() -> Activity:
        act = Activity(hang_up=lambda _reply: closed.append(act))
        return act

    first = [session() for _ in range(cap)]
    for act in first:
        assert gate.admit(act, "10.0.0.1") is None
        act.waiting()
    # the oldest goes first; one that just did something useful goes last; one that only
    # said NOOP keeps its place; one being answered is never chosen
    first[0].busy()
    first[1].waiting()
    first[2].busy()
    first[2].waiting(productive=False)
    started = time.process_time()
    for _ in range(5000):
        act = session()
        assert gate.admit(act, None) is None
        act.waiting()
    cpu = time.process_time() - started
    assert len(closed) == 5000 and gate.open == cap
    assert closed[0] is first[2] and closed[1] is first[3], "longest idle first"
    assert first[0] not in closed and first[1] not in closed
    assert len(gate._idle) <= 4 * gate.open + 64  # stale entries are pruned
    assert cpu < 2.0, f"{cpu:.2f} s of CPU for 5,000 evictions"
    for act in list(gate.sessions):
        gate.leave(act)
    assert gate._idle == []  # nothing pins a closed session
    await gate.drain(0)  # stops the sweeper


class _Hooks:
    """A handler with the hooks aiosmtpd inspects (EHLO's signature among them)."""

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:  # fmt: skip
        return responses

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "250 OK"


async def test_a_session_is_built_without_aiosmtpd_introspection() -> None:
    """relay.smtp.fastinit sets what aiosmtpd's SMTP.__init__ sets, with the command, hook
    and AUTH tables built once: every attribute there, equal tables, and a fraction of the
    cost (aiosmtpd's inspect.getmembers was ~1.5 ms a connection, most of a flood's)."""
    gate = ConnectionGate(Limits())
    handler = _Hooks()
    kwargs: dict[str, Any] = dict(
        data_size_limit=1000, hostname="mx.test", ident="ESMTP relay", timeout=30,
        decode_data=False, enable_SMTPUTF8=True, proxy_protocol_timeout=5.0,
        loop=asyncio.get_running_loop(),
    )  # fmt: skip
    lean = RelaySMTP(handler, gate=gate, **kwargs)
    full = RelaySMTP.__new__(RelaySMTP)
    SMTP.__init__(full, handler, **kwargs)
    assert set(vars(full)) <= set(vars(lean)), set(vars(full)) - set(vars(lean))
    for name, value in vars(full).items():
        if isinstance(value, str | int | float | bool | type(None)):
            assert getattr(lean, name) == value, name
    commands = {k: m.__func__ for k, m in full._smtp_methods.items()}
    assert commands == fastinit.tables(RelaySMTP, handler).commands
    assert set(lean._smtp_methods) == set(commands)  # each wrapped by the gate's tracking
    assert full._handle_hooks == lean._handle_hooks
    assert full._ehlo_hook_ver == lean._ehlo_hook_ver == "new"
    assert {k: v.is_builtin for k, v in full._auth_methods.items()} == {
        k: v.is_builtin for k, v in lean._auth_methods.items()
    }
    assert all(m.__self__ is lean for m in lean._smtp_methods.values())

    def cost(build: Any, n: int = 100) -> float:
        """The best of five rounds: a round that shared its core with something else says
        nothing about the code."""
        rounds = []
        for _ in range(5):
            started = time.process_time()
            for _ in range(n):
                build()
            rounds.append((time.process_time() - started) / n)
        return min(rounds)

    ours = cost(lambda: RelaySMTP(handler, gate=gate, **kwargs))
    theirs = cost(lambda: SMTP(handler, **kwargs))
    print(f"\nsession object: {ours * 1e6:.0f} µs, aiosmtpd's {theirs * 1e6:.0f} µs")
    assert ours * 3 < theirs, (ours, theirs)


def test_quiet_sessions_are_counted_not_logged() -> None:
    """Under stress (or while the listener sheds a flood) a session that never sends a
    command gets no log line of its own; what was counted is logged as one summary."""
    gate = ConnectionGate(Limits(max_connections=4, stress_threshold=0.5))
    loud, quiet = Activity(hang_up=lambda _r: None), Activity(hang_up=lambda _r: None)
    quiet.quiet = True
    with structlog.testing.capture_logs() as logs:
        gate.note("smtp.session.end", loud)
        for _ in range(3):
            gate.note("smtp.session.end", quiet)
            gate.shed("smtp.connection.gone")
        gate.summarise(force=True)
    events = [(line["event"], line.get("smtp_session_end"), line.get("smtp_connection_gone"))
              for line in logs]  # fmt: skip
    assert events == [("smtp.session.end", None, None), ("smtp.gate.summary", 3, 3)], logs
    assert not gate.quiet  # nothing open, and three connections shed are no flood
    for _ in range(60):
        gate.shed("smtp.connection.gone")
    assert gate.quiet


# --- floods over loopback at the shipped limits -------------------------------------


def connection_outcomes() -> dict[str, float]:
    """relay_smtp_connections by outcome, as /metrics would show them now."""
    return {
        sample.labels["outcome"]: sample.value
        for family in metrics.SMTP_CONNECTIONS.collect()
        for sample in family.samples
        if sample.name.endswith("_total")
    }


@pytest.mark.slow
async def test_connect_and_drop_flood_at_the_cap(shipped: Settings) -> None:
    """2,000 idle sessions hold every slot while another process opens and drops
    connections as fast as it can from 250 addresses; a legitimate client keeps being
    served and the descriptors come back once it stops.

    Before relay.smtp.listener and relay.smtp.fastinit the relay spent more per dropped
    connection than the attacker did (asyncio built a protocol, ~1.5 ms of aiosmtpd
    introspection and three log lines for each, up to 2,000 per turn of the loop): the
    legitimate client's EHLO waited > 10 s and got 421 4.4.2."""
    _need_fds(2000 + 3000)
    async with relay_with_order(shipped) as (relay, alias):
        base_fds = fds()
        await timed_legit(relay.port, alias, 1, gap=0)  # warm: the first message's costs
        async with attack("hold", relay.port, alias, 2000):
            await asyncio.sleep(0.5)
            held = relay.gate.open
            before, cpu, wall = connection_outcomes(), time.process_time(), time.monotonic()
            async with attack("flood", relay.port, alias):
                await asyncio.sleep(1.0)
                times = await timed_legit(relay.port, alias, 5)
                peak_fds, peak_rss = fds(), rss_mb()
                cpu, wall = time.process_time() - cpu, time.monotonic() - wall
                after = connection_outcomes()
        with contextlib.suppress(TimeoutError):  # the attacker's sockets close on its exit
            await asyncio.wait_for(relay.gate.empty.wait(), 20)
        left = fds()
    seen = {k: int(v - before.get(k, 0)) for k, v in after.items() if v > before.get(k, 0)}
    report(
        "connect-and-drop flood", times, held=held, peak_fds=peak_fds, rss_mb=round(peak_rss),
        relay_cpu=f"{cpu / wall:.0%}", per_s=round(sum(seen.values()) / wall), outcomes=seen,
    )  # fmt: skip
    assert held >= 1900
    assert seen.get("refused_gone", 0) > 1000, seen  # the flood was on, and shed cheaply
    assert max(times) < 5.0, times  # 2 s is the target (see the report); CI is loaded
    assert left < base_fds + 50, (base_fds, left)


async def test_stalled_tls_handshakes_cost_little_memory(shipped: Settings) -> None:
    """STARTTLS, then not a byte of the handshake, 600 times. asyncio's TLS layer keeps a
    256 KB read buffer per connection: 600 stalled handshakes held ~190 MB. Each may cost
    the relay tens of KB, not hundreds, and a legitimate client is served meanwhile."""
    _need_fds(600 + 500)
    async with relay_with_order(shipped) as (relay, alias):
        await timed_legit(relay.port, alias, 1, gap=0)  # warm: the first message's costs
        before = rss_mb()
        async with attack("tls", relay.port, alias, 600):
            await asyncio.sleep(0.5)
            grown = rss_mb() - before
            times = await timed_legit(relay.port, alias, 3)
    report("600 stalled TLS handshakes", times, rss_growth_mb=round(grown, 1))
    assert grown < 100, f"{grown:.0f} MB for 600 stalled handshakes"  # was 188
    assert max(times) < 5.0, times


async def test_a_stalled_tls_handshake_is_timed_out(lite_settings: Any, tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path)
    settings = with_smtp(lite_settings(), tls_cert=str(cert), tls_key=str(key), timeout=1.0)
    async with relay_with_order(settings) as (relay, _alias):
        conn = await Conn.open(relay.port, "127.0.0.9")
        assert (await conn.cmd("EHLO stall.test")).startswith("250")
        assert (await conn.cmd("STARTTLS")).startswith("220")
        _said, after = await conn.until_closed(10)  # the 421 went into the TLS layer
        assert after < 4, after
        assert relay.gate.open == 0
        conn.close()


async def test_clients_that_never_read_a_reply(shipped: Settings) -> None:
    """200 clients pipeline 100,000 NOOPs each and never read: what the relay holds for
    each is bounded by the transport's buffers, and a legitimate client is served."""
    async with relay_with_order(shipped) as (relay, alias):
        await timed_legit(relay.port, alias, 1, gap=0)
        before = rss_mb()
        async with attack("noread", relay.port, alias, 200):
            await asyncio.sleep(2.0)
            grown = rss_mb() - before
            times = await timed_legit(relay.port, alias, 3)
            stuck = sum(1 for a in relay.gate.sessions if a.writing_since is not None)
    report("200 clients not reading", times, rss_growth_mb=round(grown, 1), stuck=stuck)
    assert grown < 150, f"{grown:.0f} MB"
    assert max(times) < 5.0, times


async def test_nothing_after_354_is_cut_after_the_grace(make_settings: Any) -> None:
    settings = with_smtp(make_settings(), data_rate_grace=0.5, data_rate_window=0.5)
    async with relay_with_order(settings) as (relay, alias):
        conn = await Conn.open(relay.port, "127.0.0.11")
        for line in ("EHLO a.test", f"MAIL FROM:<{BUYER}>", f"RCPT TO:<{alias}>", "DATA"):
            assert (await conn.cmd(line))[0] in "23"
        said, after = await conn.until_closed(10)
        assert said.startswith("421 4.4.2"), said
        assert after < 4, after


async def test_silent_connection_from_the_balancer_network(lite_settings: Any) -> None:
    """With PROXY required, a balancer connection that never sends its header is closed
    after proxy_timeout, unanswered, and never takes one of the gate's slots."""
    settings = lite_settings(
        smtp={
            "listen": "127.0.0.1:0", "proxy_protocol": True,
            "proxy_networks": ["127.0.0.0/8"], "proxy_timeout": "0.5s",
        }
    )  # fmt: skip
    async with relay_with_order(settings) as (relay, _alias):
        reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
        await asyncio.sleep(0.1)
        assert relay.gate.open == 0
        started = time.monotonic()
        said = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        assert said == b"", said
        assert time.monotonic() - started < 3


async def test_ipv6_clients_are_counted_per_64(lite_settings: Any) -> None:
    try:
        probe = await asyncio.start_server(lambda r, w: None, "::1", 0)
        probe.close()
    except OSError:
        pytest.skip("no IPv6 loopback")
    settings = with_smtp(lite_settings(), listen="[::1]:0", max_connections_per_client=3)
    async with relay_with_order(settings) as (relay, _alias):
        conns = []
        for _ in range(4):
            reader, writer = await asyncio.open_connection("::1", relay.port)
            conns.append(writer)
            conns_banner = (await asyncio.wait_for(reader.readline(), 10)).decode()
        assert conns_banner.startswith("421 4.7.0"), conns_banner
        assert relay.gate.per_client == {"::/64": 3}
        for writer in conns:
            writer.close()


async def test_pipelined_junk_and_errors_end_the_session(lite_settings: Any) -> None:
    """100,000 pipelined NOOPs (or RCPTs for aliases that do not exist) kept the loop busy
    for minutes and a legitimate client timed out; Postfix's junk-command and hard-error
    limits end such a session after ~120 commands."""
    async with relay_with_order(lite_settings()) as (relay, alias):
        for junk in (b"NOOP\r\n" * 100_000, b"RCPT TO:<nobody@relay.example>\r\n" * 5000):
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", relay.port, local_addr=("127.0.0.21", 0)
            )
            writer.write(b"EHLO junk.test\r\nMAIL FROM:<a@b.example>\r\n" + junk)
            said = b""
            with contextlib.suppress(ConnectionError):
                while chunk := await asyncio.wait_for(reader.read(65536), 30):
                    said += chunk
            writer.close()
            assert b"421 4.7.0 Too many errors" in said, said[-200:]
            assert said.count(b"\r\n") < 200
        _seconds, reply = await legit(relay.port, alias)
        assert reply.startswith("250 2.0.0"), reply
