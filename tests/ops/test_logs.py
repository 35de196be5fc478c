"""The log of a real ``relay serve`` process: JSON lines, the session id on every line of
a session (handler and pipeline lines too), and no real address anywhere."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from tests.helpers import (
    BUYER,
    DOMAIN,
    ORDER,
    SELLER,
    free_port,
    message,
    relay_cli,
    write_settings,
)
from tests.ops.support import RelayProcess

# Lines written by background tasks (worker, group commit, start/stop), not by a session.
BACKGROUND = {"relay.delivery", "relay.store.commit", "relay.service", "relay.health", "alembic"}


async def cmd(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, line: str) -> str:
    writer.write(line.encode() + b"\r\n")
    reply = b""
    while True:
        got = await asyncio.wait_for(reader.readline(), 20)
        reply += got
        if len(got) < 4 or got[3:4] != b"-":
            return reply.decode()


async def test_session_log_has_session_id_everywhere_and_no_addresses(
    db_url: str, sink, tmp_path: Path
) -> None:
    port = free_port()
    config = write_settings(
        tmp_path / "relay.toml",
        relay={"domain": DOMAIN},
        smtp={"listen": f"127.0.0.1:{port}"},
        database={"url": db_url},
        delivery={"smarthost": f"127.0.0.1:{sink.port}", "poll_interval": "0.2s"},
        auth={"mode": "off"},
        log={"format": "json", "level": "debug"},
    )
    code, out, err = await relay_cli(
        config, "order", "create", ORDER, "--buyer", BUYER, "--seller", SELLER, "--json"
    )
    assert code == 0, err
    alias = json.loads(out)["seller_alias"]
    relay = RelayProcess(config, tmp_path / "relay.log", port=port)
    await relay.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert (await asyncio.wait_for(reader.readline(), 10)).startswith(b"220")
        assert (await cmd(reader, writer, "EHLO client.test")).startswith("250")
        # one accepted message, with a refused RCPT inside the transaction
        assert (await cmd(reader, writer, f"MAIL FROM:<{BUYER}>")).startswith("250")
        assert (await cmd(reader, writer, f"RCPT TO:<nobody@{DOMAIN}>")).startswith("550")
        assert (await cmd(reader, writer, f"RCPT TO:<{alias}>")).startswith("250")
        assert (await cmd(reader, writer, "DATA")).startswith("354")
        data = message(BUYER, alias, body="Hi, I am Alice, alice@buyer.example\n").as_bytes()
        assert (await cmd(reader, writer, data.decode() + "\r\n.")).startswith("250")
        # one refused message: the From is not the order's other party
        assert (await cmd(reader, writer, "MAIL FROM:<mallory@evil.example>")).startswith("250")
        assert (await cmd(reader, writer, f"RCPT TO:<{alias}>")).startswith("250")
        assert (await cmd(reader, writer, "DATA")).startswith("354")
        data = message("mallory@evil.example", alias).as_bytes()
        assert (await cmd(reader, writer, data.decode() + "\r\n.")).startswith("550")
        assert (await cmd(reader, writer, "QUIT")).startswith("221")
        writer.close()
        await sink.wait_for(1)
        for _ in range(100):  # the worker logs just after the sink's 250
            if "delivery.delivered" in relay.log.read_text():
                break
            await asyncio.sleep(0.1)
    except AssertionError as err:  # say why the relay answered as it did
        trouble = [line for line in relay.log.read_text().splitlines() if '"error"' in line]
        raise AssertionError(f"{err}; relay log errors: {trouble[-5:]}") from err
    finally:
        assert await relay.stop() == 0
    lines = relay.lines()  # every line is JSON (json.loads would fail otherwise)
    text = relay.log.read_text().lower()
    for address in (BUYER, SELLER, "mallory@evil.example"):
        assert address not in text, f"{address} in the log"

    starts = [i for i, line in enumerate(lines) if line["event"] == "smtp.session.start"]
    ends = [i for i, line in enumerate(lines) if line["event"] == "smtp.session.end"]
    # the banner probe of wait_for_banner is a session too: ours is the last one
    first, last = starts[-1], ends[-1]
    session = lines[first]["session"]
    assert session and lines[last]["session"] == session
    window = [line for line in lines[first : last + 1] if line.get("logger") not in BACKGROUND]
    missing = [line for line in window if not line.get("session")]
    assert not missing, f"lines of the session without its id: {missing}"
    own = [line for line in window if line["session"] == session]
    events = {line["event"] for line in own}
    assert {"smtp.rcpt.refused", "message.accepted", "message.refused"} <= events, events
    loggers = {line.get("logger") for line in own}
    assert {"relay.smtp", "relay.pipeline"} <= loggers, loggers
    delivered = [line for line in lines if line["event"] == "delivery.delivered"]
    assert delivered and all(line["level"] == "info" for line in delivered)
