"""A PostgreSQL outage under load: nothing lost, nothing sent twice, no 5xx.

A private PostgreSQL cluster (initdb + pg_ctl, started by the test) backs a real
``relay serve --no-worker`` and two ``relay worker`` processes on one journal directory;
load clients send over SMTP and retry a 4xx or a cut connection as an MTA
would. Mid-flow the cluster is stopped for ~10 s, twice, with a claim lease shorter
than the outage, so every in-flight lease runs out while the database is away; each
time one worker process is also SIGKILLed mid-outage and restarted. The recipient's
server must receive every acknowledged message exactly once (counted by the relay's
Message-ID): an outcome that could not be recorded is kept (and journaled) and retried,
and a lease that ran out while the database was down is no sign that its worker died.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest

from tests.delivery_support import SlowSink, started
from tests.helpers import (
    BUYER,
    DOMAIN,
    ORDER,
    SELLER,
    free_port,
    message,
    relay_cli,
    wait_for_banner,
    write_settings,
)
from tests.ops.support import RelayProcess


class Killable(RelayProcess):
    """A ``relay worker`` the test kills, and starts again the way a service manager
    would once the database is reachable: the new process has imported the relay
    while the database was still down and runs the moment it accepts connections (the
    restart being faster than the lease is what lets the journal, not another worker,
    settle the killed worker's kept outcomes; the shipped 60 s lease allows for that)."""

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        await self.proc.wait()

    async def start_when_up(self, db_port: int) -> None:
        with self.log.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-c", RESTART, str(db_port), str(self.config), *self.args,
                stdout=out, stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip


RESTART = """
import socket, sys, time
import relay.cli.serve, relay.service, relay.delivery.worker  # before the database is back
port, config, *args = sys.argv[1:]
while True:
    try:
        socket.create_connection(("127.0.0.1", int(port)), timeout=1).close()
        break
    except OSError:
        time.sleep(0.05)
sys.argv = ["relay", "--config", config, *args]
from relay.cli import main
main()
"""

CLIENTS = 6
OUTAGES = 2
OUTAGE_SECONDS = 10.0
LEASE = 8.0
FLOW_SECONDS = 3.0  # load before, between and after the outages
TOKEN = re.compile(rb"Subject: outage ([a-z0-9-]+)")


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _version(path: str) -> int:
    m = re.search(r"/postgresql/(\d+)/", path)
    return int(m.group(1)) if m else 0


PG_BIN = _pg_bin()
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(PG_BIN is None, reason="needs PostgreSQL's initdb and pg_ctl"),
]


class Cluster:
    """A throw-away PostgreSQL cluster on a loopback port, trust authentication.

    initdb refuses to run as root: as root, the cluster belongs to the ``postgres`` user.
    """

    def __init__(self, base: Path) -> None:
        assert PG_BIN is not None
        self.base, self.data, self.port = base, base / "data", free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            self.as_user = ["runuser", "-u", "postgres", "--"]
            shutil.chown(base, "postgres")

    def _run(self, *args: str) -> None:
        assert PG_BIN is not None
        cmd = [*self.as_user, str(PG_BIN / args[0]), *args[1:]]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"{' '.join(args[:2])}: {done.stdout}{done.stderr}"

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1"
        self._run("pg_ctl", "start", "-w", "-D", str(self.data), "-l",
                  str(self.base / "pg.log"), "-o", options)  # fmt: skip

    def stop(self) -> None:
        self._run("pg_ctl", "stop", "-w", "-m", "fast", "-D", str(self.data))

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"


@contextlib.contextmanager
def private_cluster() -> Iterator[Cluster]:
    base = Path(tempfile.mkdtemp(prefix="relay-pg-"))
    cluster = Cluster(base)
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        with contextlib.suppress(Exception):
            cluster.stop()
        shutil.rmtree(base, ignore_errors=True)


@dataclass
class Sender:
    """One sending MTA: each message until 250, retrying 4xx replies and cut connections."""

    acked: list[str] = field(default_factory=list)
    temp: Counter[str] = field(default_factory=Counter)
    perm: Counter[str] = field(default_factory=Counter)
    cut: int = 0

    async def run(self, stop: asyncio.Event, port: int, alias: str, token: str) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            mark = f"{token}-{n}"
            data = message(BUYER, alias, subject=f"outage {mark}").as_bytes()
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if await self._once(port, alias, data, mark):
                    break
                await asyncio.sleep(0.3)

    async def _once(self, port: int, alias: str, data: bytes, mark: str) -> bool:
        """True when the message's fate is settled (250 or 5xx)."""
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=15, start_tls=False)
        try:
            await smtp.connect()
            await smtp.sendmail(BUYER, [alias], data)
        except aiosmtplib.SMTPRecipientsRefused as err:
            code, text = err.recipients[0].code, err.recipients[0].message
        except aiosmtplib.SMTPResponseException as err:
            code, text = err.code, err.message
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            self.cut += 1
            smtp.close()
            return False
        else:
            self.acked.append(mark)
            with contextlib.suppress(Exception):
                await smtp.quit()
            return True
        smtp.close()
        if code <= 0:
            self.cut += 1
            return False
        bucket = self.perm if code >= 500 else self.temp
        bucket[f"{code} {text[:60]}"] += 1
        return code >= 500


async def test_postgresql_outage_sends_nothing_twice(tmp_path: Path) -> None:
    arrivals: list[bytes] = []
    # The recipient takes its time over DATA, so sends are in flight when the database
    # goes: their outcomes are the ones that cannot be recorded.
    sink = SlowSink(delay=0.5, data_reply=lambda data: arrivals.append(data) and None)
    async with started(sink):
        await _outage_under_load(sink, arrivals, tmp_path)


async def _outage_under_load(sink: Any, arrivals: list[bytes], tmp_path: Path) -> None:
    started = time.monotonic()
    with private_cluster() as cluster:
        phases: dict[str, float] = {"cluster up": time.monotonic() - started}
        port = free_port()
        common: dict[str, Any] = {
            "relay": {"domain": DOMAIN},
            "database": {"url": cluster.url, "pool_size": 4},
            "delivery": {
                "smarthost": f"127.0.0.1:{sink.port}",
                # Shorter than the outage, so every lease runs out while the database is
                # away; long enough for the killed worker to be started again before the
                # other takes its rows over (what `relay.service` under systemd does).
                "claim_lease": f"{LEASE:.0f}s",
                "retry": ["1s"],
                "poll_interval": "0.2s",
                "timeout": "5s",
            },
            "auth": {"mode": "off"},
            "policy": {"enabled": False},
            "limits": {  # one order and one client address carry the whole load
                "per_order_day": 0, "per_party_hour": 0, "per_party_day": 0, "per_ip_minute": 0,
            },
            "log": {"format": "json"},
        }
        common["delivery"]["journal_dir"] = str(tmp_path / "journal")  # one host, shared
        config = write_settings(
            tmp_path / "relay.toml", **common, smtp={"listen": f"127.0.0.1:{port}"}
        )
        code, out, err = await relay_cli(
            config, "order", "create", ORDER, "--buyer", BUYER, "--seller", SELLER, "--json"
        )
        assert code == 0, err
        alias = json.loads(out)["seller_alias"]
        procs = [
            RelayProcess(config, tmp_path / "serve.log", "serve", "--no-worker"),
            Killable(config, tmp_path / "worker1.log", "worker"),
            RelayProcess(config, tmp_path / "worker2.log", "worker"),
        ]
        senders = [Sender() for _ in range(CLIENTS)]
        stop = asyncio.Event()
        outages: list[tuple[float, float]] = []
        try:
            await asyncio.gather(*(p.start() for p in procs))
            await wait_for_banner(port, timeout=60)  # slow on a loaded two-core host
            phases["relay up"] = time.monotonic() - started
            load = [
                asyncio.create_task(s.run(stop, port, alias, f"c{i}"))
                for i, s in enumerate(senders)
            ]
            for _ in range(OUTAGES):
                await asyncio.sleep(FLOW_SECONDS)
                down = time.monotonic()
                await asyncio.to_thread(cluster.stop)
                # Mid-outage the worker process is also killed, and started again once
                # the database is back: what it could not record must come back from
                # its journal, not be sent again.
                await asyncio.sleep(OUTAGE_SECONDS / 2)
                await procs[1].kill()
                await procs[1].start_when_up(cluster.port)
                await asyncio.sleep(OUTAGE_SECONDS / 2)
                await asyncio.to_thread(cluster.start)
                outages.append((down - started, time.monotonic() - started))
            await asyncio.sleep(FLOW_SECONDS)
            stop.set()
            await asyncio.wait_for(asyncio.gather(*load), 90)
            phases["load done"] = time.monotonic() - started
            expected = {mark for s in senders for mark in s.acked}
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if expected <= {_token(d) for d in arrivals}:
                    break
                await asyncio.sleep(0.2)
            phases["delivered"] = time.monotonic() - started
            await asyncio.sleep(3.0)  # a late duplicate (a lease running out) shows up here
        finally:
            stop.set()
            codes = [await p.stop() for p in procs]
    assert codes == [0, 0, 0], codes
    kept = {p.log.stem: _events(p.log, "delivery.outcome_kept") for p in procs}
    adopted = _adopted(procs[1].log)

    by_id = Counter(_relay_message_id(d) for d in arrivals)
    tokens = Counter(_token(d) for d in arrivals)
    missing = expected - set(tokens)
    twice = {mid: n for mid, n in by_id.items() if n > 1}
    temp = sum((s.temp for s in senders), Counter())
    perm = sum((s.perm for s in senders), Counter())
    print(
        f"\nPostgreSQL outage x{OUTAGES} ({OUTAGE_SECONDS:.0f} s each, lease {LEASE:.0f} s): "
        f"{len(expected)} accepted, {len(tokens)} delivered, {len(missing)} lost, "
        f"{sum(n - 1 for n in twice.values())} duplicates by relay Message-ID, "
        f"{sum(n - 1 for n in tokens.values() if n > 1)} by token; "
        f"4xx {dict(temp)}, 5xx {dict(perm)}, cut {sum(s.cut for s in senders)}; "
        f"outages at {[(round(a, 1), round(b, 1)) for a, b in outages]} s; "
        f"outcomes kept {kept}, adopted from the killed worker's journal {adopted}; "
        f"{', '.join(f'{k} at {v:.1f}s' for k, v in phases.items())}; "
        f"{time.monotonic() - started:.1f}s"
    )
    assert len(expected) >= 30, "too little load to prove anything"
    assert sum(kept.values()), "no send was in flight when the database went: proves nothing"
    assert not perm, f"5xx replies: {perm}"
    assert not missing, f"accepted, never delivered: {sorted(missing)[:20]}"
    assert not twice, f"delivered twice: {len(twice)} Message-IDs"
    assert all(mid for mid in by_id), "a delivered message without a Message-ID"


def _events(log: Path, name: str) -> int:
    return log.read_text().count(f'"event": "{name}"')


def _adopted(log: Path) -> int:
    lines = [json.loads(x) for x in log.read_text().splitlines() if x.startswith("{")]
    return sum(x["outcomes"] for x in lines if x.get("event") == "delivery.journal_adopted")


def _relay_message_id(data: bytes) -> str:
    return str(email.message_from_bytes(data).get("Message-ID", ""))


def _token(data: bytes) -> str:
    m = TOKEN.search(data)
    return m.group(1).decode() if m else ""
