"""Signals to a real ``relay serve`` process: SIGHUP reloads the TLS certificate, SIGTERM
drains (open transaction gets its 250, in-flight delivery finishes, new connections are
refused) and the process exits 0 within ``relay.shutdown_grace``."""

from __future__ import annotations

import asyncio
import json
import signal
import smtplib
import ssl
import time
from pathlib import Path

from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.helpers import (
    BUYER,
    DOMAIN,
    ORDER,
    SELLER,
    Received,
    free_port,
    make_cert,
    message,
    relay_cli,
    send,
    write_settings,
)
from tests.ops.support import RelayProcess, common_name, http_get

GRACE = 10.0
SINK_DELAY = 3.0


class SlowSink:
    """A recipient MTA that takes SINK_DELAY seconds to answer DATA."""

    def __init__(self) -> None:
        self.messages: list[Received] = []
        self.in_data = asyncio.Event()
        self.port = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.in_data.set()
        await asyncio.sleep(SINK_DELAY)
        data = envelope.original_content or b""
        self.messages.append(Received(envelope.mail_from or "", list(envelope.rcpt_tos), data))
        return "250 OK slow sink"

    async def start(self) -> asyncio.Server:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: SMTP(self, hostname="sink.test", decode_data=False, loop=loop), "127.0.0.1", 0
        )
        self.port = server.sockets[0].getsockname()[1]
        return server


def starttls_cn(port: int) -> str:
    """The common name of the certificate the relay offers after STARTTLS."""
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.starttls(context=ctx)
        der = client.sock.getpeercert(binary_form=True)  # type: ignore[union-attr]
    return common_name(der)


async def wait_cn(port: int, want: str) -> None:
    deadline = time.monotonic() + 15
    while await asyncio.to_thread(starttls_cn, port) != want:
        assert time.monotonic() < deadline, f"the relay never offered {want}"
        await asyncio.sleep(0.1)


async def reply(reader: asyncio.StreamReader) -> str:
    out = b""
    while True:
        line = await asyncio.wait_for(reader.readline(), 15)
        out += line
        if len(line) < 4 or line[3:4] != b"-":
            return out.decode()


async def command(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, line: str) -> str:
    writer.write(line.encode() + b"\r\n")
    return await reply(reader)


async def test_sighup_reload_and_sigterm_drain(db_url: str, tmp_path: Path) -> None:
    sink = SlowSink()
    sink_server = await sink.start()
    port, ops = free_port(), free_port()
    tls = tmp_path / "tls"
    tls.mkdir()
    cert, key = make_cert(tls, "a.relay.example")
    config = write_settings(
        tmp_path / "relay.toml",
        relay={"domain": DOMAIN, "shutdown_grace": f"{GRACE}s"},
        smtp={"listen": f"127.0.0.1:{port}", "tls_cert": str(cert), "tls_key": str(key)},
        database={"url": db_url},
        delivery={"smarthost": f"127.0.0.1:{sink.port}", "poll_interval": "0.2s"},
        auth={"mode": "off"},
        log={"format": "json"},
        metrics={"listen": f"127.0.0.1:{ops}"},
    )
    code, out, err = await relay_cli(
        config, "order", "create", ORDER, "--buyer", BUYER, "--seller", SELLER, "--json"
    )
    assert code == 0, err
    alias = json.loads(out)["seller_alias"]
    relay = RelayProcess(config, tmp_path / "relay.log", port=port)
    await relay.start()
    try:
        # SIGHUP: new connections get the new certificate; a broken file keeps the old one
        assert await asyncio.to_thread(starttls_cn, port) == "a.relay.example"
        make_cert(tls, "b.relay.example")
        relay.signal(signal.SIGHUP)
        await wait_cn(port, "b.relay.example")
        cert.write_text("not a certificate\n")
        relay.signal(signal.SIGHUP)
        await asyncio.sleep(0.5)
        assert await asyncio.to_thread(starttls_cn, port) == "b.relay.example"

        # a delivery in flight at the (slow) recipient server
        m0 = message(BUYER, alias, subject="m0").as_bytes()
        assert (await send(port, BUYER, [alias], m0))[0] == 250
        await asyncio.wait_for(sink.in_data.wait(), 15)
        # a transaction half-way through DATA, and an idle session
        r1, w1 = await asyncio.open_connection("127.0.0.1", port)
        await reply(r1)
        assert (await command(r1, w1, "EHLO one.test")).startswith("250")
        assert (await command(r1, w1, f"MAIL FROM:<{BUYER}>")).startswith("250")
        assert (await command(r1, w1, f"RCPT TO:<{alias}>")).startswith("250")
        assert (await command(r1, w1, "DATA")).startswith("354")
        m1 = message(BUYER, alias, subject="m1").as_bytes()
        w1.write(m1[:40])
        await w1.drain()
        r2, w2 = await asyncio.open_connection("127.0.0.1", port)
        await reply(r2)
        assert (await command(r2, w2, "EHLO two.test")).startswith("250")

        stopped_at = time.monotonic()
        relay.signal(signal.SIGTERM)
        assert (await reply(r2)).startswith("421 4.3.2"), "idle session not told"
        deadline = time.monotonic() + 10  # the listener closes at once (on a loaded host:
        while True:  # as soon as the process gets to run)
            try:
                _, w = await asyncio.open_connection("127.0.0.1", port)
                w.close()
            except ConnectionRefusedError:
                break
            assert time.monotonic() < deadline, "new connections still accepted while draining"
            await asyncio.sleep(0.05)
        status, body = await http_get(ops, "/readyz")
        assert status == 503 and "draining" in body, body
        assert relay.proc is not None and relay.proc.returncode is None

        w1.write(m1[40:] + b"\r\n.\r\n")
        final = await reply(r1)
        assert final.startswith("250 2.0.0"), final
        assert (await reply(r1)).startswith("421 4.3.2")
        assert await asyncio.wait_for(r1.read(), 5) == b""  # then closed

        rc = await asyncio.wait_for(relay.proc.wait(), GRACE + 5)
        elapsed = time.monotonic() - stopped_at
        assert rc == 0, relay.log.read_text()[-3000:]
        assert elapsed < GRACE + 3, f"took {elapsed:.1f}s"  # the bound, plus closing down
        assert elapsed >= SINK_DELAY - 1, "did not wait for the delivery in flight"
    finally:
        await relay.stop()
        sink_server.close()

    assert [b"Subject: m0" in m.data for m in sink.messages] == [True]
    code, out, err = await relay_cli(config, "archive", "search", "--order", ORDER, "--json")
    assert code == 0, err
    states = {r["subject"]: [d["status"] for d in r["deliveries"]] for r in json.loads(out)}
    assert states == {"m0": ["delivered"], "m1": ["queued"]}, states
    events = [line["event"] for line in relay.lines()]
    assert "tls.reloaded" in events and "tls.reload.failed" in events
