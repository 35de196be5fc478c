"""The shipped HAProxy configuration, for real: HAProxy (when installed) in front of a
relay on loopback, PROXY v2 on every connection, health checks on /readyz. A client
connecting from 127.0.0.2 must be archived as 127.0.0.2, not as HAProxy's 127.0.0.1."""

from __future__ import annotations

import asyncio
import re
import shutil
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from relay.store.tables import archive
from tests.helpers import (
    BUYER,
    create_order,
    free_port,
    message,
    running_relay,
)

SHIPPED = Path(__file__).resolve().parents[2] / "deploy" / "haproxy" / "haproxy.cfg"
HAPROXY = shutil.which("haproxy")
pytestmark = pytest.mark.skipif(
    HAPROXY is None, reason="haproxy not installed (apt install haproxy)"
)


def test_config(front: int, smtp: int, ops: int) -> str:
    """The shipped file with this test's addresses and quicker checks."""
    text = SHIPPED.read_text()
    text = text.replace("bind :25\n", f"bind 127.0.0.1:{front}\n")
    text = re.sub(r"\n\s*bind :::25.*", "", text)
    text = re.sub(r"maxconn \d+", "maxconn 500", text)  # the test runner's file limit
    text = re.sub(r"\n\s*server mx\d .*", "", text)
    text = text.replace("check port 9125 inter 5s", f"check port {ops} inter 200ms")
    assert f"port {ops}" in text and f"127.0.0.1:{front}" in text
    return text + f"    server mx1 127.0.0.1:{smtp}\n"


test_config.__test__ = False  # type: ignore[attr-defined]


async def smtp_session(port: int, lines: list[bytes]) -> list[str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=("127.0.0.2", 0))
    try:
        out = [(await asyncio.wait_for(reader.readline(), 10)).decode()]
        for line in lines:
            writer.write(line + b"\r\n")
            reply = b""
            while True:
                got = await asyncio.wait_for(reader.readline(), 10)
                reply += got
                if len(got) < 4 or got[3:4] != b"-":
                    break
            out.append(reply.decode())
        return out
    finally:
        writer.close()


async def test_relay_behind_shipped_haproxy_config(make_settings, tmp_path: Path) -> None:
    front, ops = free_port(), free_port()
    settings = make_settings(
        smtp={"proxy_protocol": True, "proxy_networks": ["127.0.0.1/32"]},
        metrics={"listen": f"127.0.0.1:{ops}"},
    )
    async with running_relay(settings, worker=False) as relay:
        cfg = tmp_path / "haproxy.cfg"
        cfg.write_text(test_config(front, relay.port, ops))
        log = (tmp_path / "haproxy.log").open("wb")
        proc = await asyncio.create_subprocess_exec(
            HAPROXY, "-db", "-f", str(cfg), stdout=log, stderr=asyncio.subprocess.STDOUT
        )
        try:
            order = await create_order(relay)
            alias = order.seller_alias
            deadline = time.monotonic() + 15
            while True:  # until HAProxy listens and forwards
                try:
                    banner = await smtp_session(front, [b"QUIT"])
                    if banner[0].startswith("220"):
                        break
                except (OSError, TimeoutError):
                    pass
                assert time.monotonic() < deadline, (tmp_path / "haproxy.log").read_text()
                await asyncio.sleep(0.1)
            replies = await smtp_session(
                front,
                [
                    b"EHLO mx.buyer.example",
                    f"MAIL FROM:<{BUYER}>".encode(),
                    f"RCPT TO:<{alias}>".encode(),
                    b"DATA",
                    message(BUYER, alias).as_bytes() + b"\r\n.",
                    b"QUIT",
                ],
            )
            assert replies[5].startswith("250 2.0.0"), replies
            # /readyz failing (as while draining) takes the relay out of HAProxy's rotation
            relay.stopping = True
            assert await _until(front, banner=False), "HAProxy kept sending to a draining relay"
            relay.stopping = False
            assert await _until(front, banner=True), "HAProxy never took the relay back"
        finally:
            if proc.returncode is None:
                proc.terminate()
            await proc.wait()
            log.close()
        async with relay.engine.connect() as conn:
            ips = (await conn.execute(sa.select(archive.c.client_ip))).scalars().all()
    assert ips == ["127.0.0.2"]


async def _until(front: int, *, banner: bool, timeout: float = 10.0) -> bool:
    """Wait until a connection through HAProxy does (or does not) reach a relay."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            got = (await smtp_session(front, []))[0].startswith("220")
        except (OSError, TimeoutError):
            got = False
        if got is banner:
            return True
        await asyncio.sleep(0.1)
    return False
