"""No client input makes the relay answer with, or log, an internal error.

A real ``relay serve`` process (JSON log, TLS configured) gets malformed commands, bad
arguments, overlong lines, binary junk, pipelining abuse, AUTH, HELO/EHLO oddities and
RSET/NOOP/VRFY/EXPN/HELP in every state of a session, plain and inside TLS. Every reply
must be a well-formed SMTP reply (an error with an enhanced status code, no Python
exception text, never our own ``451``) and the log must hold no traceback and no error.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import ssl
from pathlib import Path

from tests.helpers import (
    BUYER,
    DOMAIN,
    ORDER,
    SELLER,
    free_port,
    make_cert,
    message,
    relay_cli,
    write_settings,
)
from tests.ops.support import RelayProcess

REPLY = re.compile(r"^[2-5]\d\d(?:[ -].*)?$")
ENHANCED = re.compile(r"^[45]\d\d[ -][45]\.\d{1,3}\.\d{1,3}(?: |$)")
PYTHON = re.compile(
    r"Traceback|Exception|\b[A-Z][a-z]+[A-Z]\w*Error\b|"
    r"\b(?:Type|Value|Key|Attribute|Index|Runtime|Assertion|OS|Unicode\w*)Error\b|\(\w+Error\)"
)

STATES: dict[str, list[bytes]] = {
    "fresh": [],
    "helo": [b"HELO client.test"],
    "ehlo": [b"EHLO client.test"],
    "mail": [b"EHLO client.test", b"MAIL FROM:<someone@anywhere.example>"],
    "rcpt": [b"EHLO client.test", f"MAIL FROM:<{BUYER}>".encode(), b"RCPT TO:<{alias}>"],
}

COMMANDS: list[bytes] = [
    b"HELO", b"HELO x", b"HELO " + b"h" * 600, b"EHLO", b"EHLO [127.0.0.1]", b"EHLO [IPv6:::1]",
    "EHLO bücher.example".encode(), b"EHLO \xff\xfe\xfd", b"EHLO a b c", b"ehlo lower.test",
    b"MAIL", b"MAIL FROM:", b"MAIL FROM:<>", b"MAIL FROM:<a@b.example>", b"MAIL FROM: <a@b>",
    b"MAIL FROM:<a@b> SIZE=abc", b"MAIL FROM:<a@b> SIZE=" + b"9" * 30,
    b"MAIL FROM:<a@b> BODY=BINARYMIME", b"MAIL FROM:<a@b> BODY=8BITMIME SMTPUTF8",
    b"MAIL FROM:<a@b> SMTPUTF8=yes", b"MAIL FROM:<a@b> FOO=bar", b"MAIL FROM:<a@b> =x",
    b"MAIL FROM:<<<>>>", b"MAIL FROM:<" + b"a" * 2000 + b"@b.example>",
    b'MAIL FROM:<"quoted local part"@b.example>', b"MAIL FROM:<@route,@x:a@b.example>",
    "MAIL FROM:<jürgen@bücher.example>".encode(), b"MAIL FROM:<\xc3\x28@x.example> SMTPUTF8",
    b"RCPT", b"RCPT TO:", b"RCPT TO:<>", b"RCPT TO:<postmaster>", b"RCPT TO:<Abuse@RELAY.example>",
    b"RCPT TO:<x@relay.example> NOTIFY=NEVER", b"RCPT TO:<\x00@relay.example>",
    b"RCPT TO:<a@[127.0.0.1]>", b"RCPT TO:<a@relay.example.>", b"RCPT TO:<{alias}>",
    "RCPT TO:<алиса@relay.example>".encode(), b"RCPT TO:<a@xn--.example>",
    b"RCPT TO:<" + b"r" * 300 + b"@relay.example>", b"RCPT TO:<a@" + b"d." * 200 + b"example>",
    b"DATA x", b"BDAT 10 LAST", b"RSET x", b"RSET", b"NOOP", b"NOOP anything", b"VRFY",
    b"VRFY <postmaster@relay.example>", b"VRFY \xff", b"EXPN", b"EXPN list", b"HELP",
    b"HELP DATA", b"HELP NOPE", b"HELP \xfe", b"AUTH", b"AUTH PLAIN", b"AUTH PLAIN AGFhAGI=",
    b"AUTH LOGIN", b"AUTH CRAM-MD5", b"AUTH XOAUTH2 dG9rZW4=", b"STARTTLS now",
    b"XFORWARD ADDR=1.2.3.4", b"XCLIENT ADDR=1.2.3.4", b"TURN", b"ETRN x", b"QUIT now", b"",
    b" ", b"\t", b"\x00\x01\x02", b"\xff" * 50, b"GET / HTTP/1.1", b"mail from:<a@b.example>",
    b"A" * 5000, b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2", b"EHLO x\rMAIL FROM:<a@b>", b"\x1b[2J",
]  # fmt: skip


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.log: list[tuple[bytes, str]] = []  # (what we sent, what came back)

    @classmethod
    async def connect(cls, port: int) -> Client:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = cls(reader, writer)
        client.log.append((b"<connect>", await client.reply()))
        return client

    async def reply(self, timeout: float = 15) -> str:
        lines = []
        while True:
            try:
                raw = await asyncio.wait_for(self.reader.readline(), timeout)
            except (ConnectionError, TimeoutError):
                raw = b""
            if not raw:
                lines.append("<closed>")
                return "\n".join(lines)
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                return "\n".join(lines)

    async def send(self, line: bytes, *, expect: int = 1) -> list[str]:
        try:
            self.writer.write(line + b"\r\n")
        except (ConnectionError, RuntimeError):
            return ["<closed>"]
        got = [await self.reply() for _ in range(expect)]
        self.log.extend((line, g) for g in got)
        return got

    def close(self) -> None:
        self.writer.close()


def check(log: list[tuple[bytes, str]]) -> list[str]:
    """What is wrong with the replies of one session (empty: nothing)."""
    bad = []
    for sent, reply in log:
        for line in reply.splitlines():
            if line == "<closed>":
                continue
            if not REPLY.match(line) or PYTHON.search(line):
                bad.append(f"{sent[:60]!r} -> {line!r}")
            elif line.startswith("451"):
                bad.append(f"{sent[:60]!r} -> our own fault: {line!r}")
            elif line[0] in "45" and not ENHANCED.match(line):
                bad.append(f"{sent[:60]!r} -> no enhanced code: {line!r}")
    return bad


async def run_commands(port: int, alias: str) -> list[str]:
    """Every command in every state, each in a fresh session, 20 at a time."""

    async def one(state: list[bytes], command: bytes) -> list[str]:
        client = await Client.connect(port)
        try:
            for line in state:
                await client.send(line.replace(b"{alias}", alias.encode()))
            await client.send(command.replace(b"{alias}", alias.encode()))
            await client.send(b"NOOP")  # still answering sensibly afterwards?
            return check(client.log)
        finally:
            client.close()

    jobs = [(s, c) for s in STATES.values() for c in COMMANDS]
    bad: list[str] = []
    for i in range(0, len(jobs), 20):
        for found in await asyncio.gather(*(one(s, c) for s, c in jobs[i : i + 20])):
            bad += found
    return bad


async def run_abuse(port: int, alias: str) -> list[str]:
    """Pipelining without reading, binary DATA, overlong lines, early hang-ups, junk
    before the banner, RSET/NOOP/VRFY/HELP inside DATA."""
    rng = random.Random(9)
    bad: list[str] = []

    # 1. a thousand pipelined commands, read only afterwards
    client = await Client.connect(port)
    client.writer.write(b"EHLO p.test\r\n" + b"NOOP\r\nRSET\r\nVRFY x\r\nHELP\r\n" * 250)
    for _ in range(1001):
        client.log.append((b"<pipelined>", await client.reply()))
    bad += check(client.log)
    client.close()

    # 2. a whole pipelined transaction, then more commands, in one write
    client = await Client.connect(port)
    data = message(BUYER, alias).as_bytes()
    client.writer.write(
        b"EHLO p.test\r\nMAIL FROM:<" + BUYER.encode() + b">\r\nRCPT TO:<" + alias.encode()
        + b">\r\nDATA\r\n" + data + b"\r\n.\r\nRSET\r\nNOOP\r\nQUIT\r\n"
    )  # fmt: skip
    for _ in range(8):
        client.log.append((b"<pipelined transaction>", await client.reply()))
    bad += check(client.log)
    client.close()

    # 3. binary junk, overlong lines and commands as message data, for an alias and for
    # the postmaster
    bodies = [bytes(rng.randrange(256) for _ in range(n)) for n in (1, 100, 5000, 70000)]
    bodies += [
        b"x" * 100_000 + b"\r\n",
        b"RSET\r\nNOOP\r\nVRFY x\r\nHELP\r\nQUIT\r\n",
        b"Subject: \xff\xfe\r\nFrom: \x00\r\n\r\n\xc3\x28",
        b"..\r\n.x\r\n. \r\n",
        b"\r\n.\r",  # a terminator split oddly
    ]
    for rcpt in (alias, f"postmaster@{DOMAIN}"):
        for body in bodies:
            client = await Client.connect(port)
            await client.send(b"EHLO junk.test")
            await client.send(f"MAIL FROM:<{BUYER}>".encode())
            await client.send(f"RCPT TO:<{rcpt}>".encode())
            if (await client.send(b"DATA"))[0].startswith("354"):
                await client.send(body + b"\r\n.")
            await client.send(b"NOOP")
            bad += check(client.log)
            client.close()

    # 4. hang-ups: mid-command, mid-DATA; junk before the banner
    for tail in (b"EHLO half", b"DATA-less junk \xff", b""):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(tail)
        writer.close()
    client = await Client.connect(port)
    for line in (b"EHLO c.test", f"MAIL FROM:<{BUYER}>".encode(), f"RCPT TO:<{alias}>".encode()):
        await client.send(line)
    await client.send(b"DATA")
    client.writer.write(b"Subject: cut off\r\n\r\nhalf a mess")
    client.close()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(200))  # a TLS hello
    client = Client(reader, writer)
    client.log.append((b"<tls hello first>", await client.reply()))
    client.log.append((b"<after>", await client.reply(timeout=3)))
    bad += check(client.log)
    writer.close()
    return bad


async def run_tls(port: int, alias: str) -> list[str]:
    """STARTTLS twice, junk instead of a handshake, commands smuggled with STARTTLS, and
    the command battery inside TLS."""
    bad: list[str] = []
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE

    client = await Client.connect(port)
    await client.send(b"EHLO t.test")
    await client.send(b"STARTTLS")
    client.writer.write(b"this is not a TLS handshake\r\n" * 10)
    client.log.append((b"<junk handshake>", await client.reply(timeout=5)))
    bad += check(client.log)
    client.close()

    client = await Client.connect(port)
    await client.send(b"EHLO t.test")
    # RFC 3207 5: a command pipelined after STARTTLS must not be run inside TLS
    got = await client.send(b"STARTTLS\r\nMAIL FROM:<injected@evil.example>")
    assert got[0].startswith("220"), got
    await client.writer.start_tls(ctx)
    await client.send(b"EHLO t.test")
    got = await client.send(b"STARTTLS")
    assert got[0].startswith("503 5.5.1"), got
    got = await client.send(f"RCPT TO:<{alias}>".encode())
    assert got[0].startswith("503"), f"the injected MAIL ran: {got}"
    for command in COMMANDS:
        await client.send(command.replace(b"{alias}", alias.encode()))
        if client.log[-1][1].endswith("<closed>"):
            break
    bad += check(client.log)
    client.close()
    return bad


async def test_no_client_input_causes_an_internal_error(db_url: str, tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path)
    port = free_port()
    config = write_settings(
        tmp_path / "relay.toml",
        relay={"domain": DOMAIN, "postmaster": "ops@ops.example"},
        smtp={
            "listen": f"127.0.0.1:{port}",
            "max_message_size": 200_000,
            "tls_cert": str(cert),
            "tls_key": str(key),
        },
        database={"url": db_url},
        delivery={"smarthost": "127.0.0.1:9", "poll_interval": "0.5s"},
        auth={"mode": "off"},
        policy={"enabled": False},
        log={"format": "json", "level": "info"},
    )
    code, out, err = await relay_cli(
        config, "order", "create", ORDER, "--buyer", BUYER, "--seller", SELLER, "--json"
    )
    assert code == 0, err
    alias = json.loads(out)["seller_alias"]
    relay = RelayProcess(config, tmp_path / "relay.log", port=port)
    await relay.start()
    try:
        bad = await run_commands(port, alias)
        bad += await run_abuse(port, alias)
        bad += await run_tls(port, alias)
        ok = Client(*await asyncio.open_connection("127.0.0.1", port))  # still serving
        assert (await ok.reply()).startswith("220")
        ok.close()
    finally:
        assert await relay.stop() == 0
    assert not bad, "\n".join(bad[:40])
    lines = relay.lines()
    # the delivery worker cannot reach 127.0.0.1:9: its complaints are not the edge's
    edge = [line for line in lines if not str(line.get("logger", "")).startswith("relay.delivery")]
    trouble = [
        line
        for line in edge
        if line.get("level") in ("error", "critical")
        or "exception" in line
        or "Traceback" in json.dumps(line)
    ]
    assert not trouble, json.dumps(trouble[:5], indent=1)[:4000]
    assert any(line["event"] == "smtp.session.start" for line in lines)
