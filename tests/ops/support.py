"""Helpers for the ops tests: self-signed certificates, a raw HTTP GET, metric lookup,
and a ``relay`` subprocess with its JSON log."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import wait_for_banner


def common_name(der: bytes) -> str:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    cert = x509.load_der_x509_certificate(der)
    return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


async def http_get(port: int, path: str, host: str = "127.0.0.1") -> tuple[int, str]:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode()


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of an exposition as {(name, labels): value}."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(data: dict[Any, float], name: str, **labels: str) -> float:
    """A sample's value (0 when absent, like a counter never incremented)."""
    return data.get((name, frozenset(labels.items())), 0.0)


def total(data: dict[Any, float], name: str, **labels: str) -> float:
    """Sum over every sample of ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in data.items() if n == name and want <= set(ls))


async def scrape(port: int) -> dict[Any, float]:
    status, body = await http_get(port, "/metrics")
    assert status == 200, body
    return samples(body)


class RelayProcess:
    """``python -m relay --config FILE ARGS`` with stdout+stderr in a log file."""

    def __init__(self, config: Path, log: Path, *args: str, port: int | None = None) -> None:
        self.config, self.log, self.args, self.port = config, log, args or ("serve",), port
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "relay", "--config", str(self.config), *self.args,
                stdout=out, stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
        if self.port is not None:
            await wait_for_banner(self.port)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    async def stop(self, timeout: float = 30) -> int:
        if self.proc is None:
            return 0
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), timeout)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        return int(self.proc.returncode or 0)

    def lines(self) -> list[dict[str, Any]]:
        """The log as JSON objects; a line that is not JSON fails the test that reads it."""
        out = []
        for line in self.log.read_text().splitlines():
            if line.strip():
                out.append(json.loads(line))
        return out
