"""Real parts for the tests: an aiosmtpd sink MTA on port 0, settings, a running relay,
and DKIM-signing mail clients for the buyer and the seller."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, make_msgid
from typing import Any

import aiosmtplib
import dkim
from aiosmtpd.smtp import SMTP, Envelope, Session

from relay.settings import Settings

DOMAIN = "relay.example"
BUYER = "alice@buyer.example"
SELLER = "support@shop.example"
ORDER = "113-4829301-5520417"


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes


@dataclass
class Sink:
    """The recipient's mail server: records what arrives; answers can be scripted."""

    messages: list[Received] = field(default_factory=list)
    rcpt_reply: Callable[[str], str | None] = lambda rcpt: None
    data_reply: Callable[[bytes], str | None] = lambda data: None
    port: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _server: asyncio.Server | None = None

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        reply = self.rcpt_reply(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        data = envelope.original_content or b""
        reply = self.data_reply(data)
        if reply:
            return reply
        self.messages.append(Received(envelope.mail_from or "", list(envelope.rcpt_tos), data))
        self.arrived.set()
        return "250 OK sink"

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SMTP(self, hostname="sink.test", decode_data=False, loop=loop), "127.0.0.1", 0
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.messages) < count:
            left = deadline - loop.time()
            if left <= 0:
                raise AssertionError(f"sink got {len(self.messages)} of {count} messages")
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), left)
        return self.messages


def test_settings(db_url: str, **sections: dict[str, Any]) -> Settings:
    base: dict[str, dict[str, Any]] = {
        "relay": {"domain": DOMAIN, "marketplace": "Marketplace"},
        "smtp": {"listen": "127.0.0.1:0"},
        "database": {"url": db_url},
        "delivery": {"retry": ["1s"], "poll_interval": "0.2s", "timeout": "5s"},
        "auth": {"mode": "off"},
        "policy": {"enabled": True},
    }
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
    return Settings.model_validate(base)


def message(
    sender: str,
    to: str,
    subject: str = "Question about my order",
    body: str = "Hello, when will my parcel arrive?\n",
    **headers: str,
) -> EmailMessage:
    msg = EmailMessage(policy=SMTP_POLICY)
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2])
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    return msg


def dkim_sign(data: bytes, domain: str, selector: str, key_pem: bytes) -> bytes:
    sig = dkim.sign(
        data,
        selector.encode(),
        domain.encode(),
        key_pem,
        include_headers=[b"from", b"to", b"subject", b"date", b"message-id"],
    )
    return sig + data


async def send(
    port: int, sender: str, rcpts: list[str], data: bytes, *, helo: str = "client.test"
) -> tuple[int, str]:
    """Send with aiosmtplib; returns the final reply (code, text), never raises on 4xx/5xx."""
    client = aiosmtplib.SMTP(
        hostname="127.0.0.1", port=port, local_hostname=helo, start_tls=False, timeout=30
    )
    await client.connect()
    try:
        _, response = await client.sendmail(sender, rcpts, data)
        return 250, response
    except aiosmtplib.SMTPRecipientsRefused as err:
        r = err.recipients[0]
        return r.code, r.message
    except aiosmtplib.SMTPResponseException as err:
        return err.code, err.message
    finally:
        with contextlib.suppress(Exception):
            await client.quit()


@contextlib.asynccontextmanager
async def running_relay(settings: Settings, **kwargs: Any) -> AsyncIterator[Any]:
    from relay.service import Relay

    relay = Relay(settings, **kwargs)
    await relay.start()
    try:
        yield relay
    finally:
        await relay.stop(grace=5)


# --- real-process helpers (settings files, ports, the ``relay`` command) ---------------


def toml_value(value: Any) -> str:
    """A TOML literal for the simple values settings use (str, bool, number, list)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def write_settings(path: Any, **sections: dict[str, Any]) -> Any:
    """Write a settings TOML file (one table per section) and return its path."""
    lines = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines.extend(f"{key} = {toml_value(v)}" for key, v in values.items())
        lines.append("")
    path.write_text("\n".join(lines))
    return path


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_for_banner(port: int, timeout: float = 20.0) -> None:
    """Wait until something on 127.0.0.1:port sends an SMTP 220 banner."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                line = await asyncio.wait_for(reader.readline(), 5)
            finally:
                writer.close()
            if line.startswith(b"220"):
                return
        except OSError:
            pass
        if loop.time() > deadline:
            raise AssertionError(f"no SMTP banner on 127.0.0.1:{port} after {timeout}s")
        await asyncio.sleep(0.05)


async def relay_cli(config: Any, *args: str, timeout: float = 60.0) -> tuple[int, str, str]:
    """Run ``python -m relay --config FILE ARGS...`` as a subprocess without blocking the
    loop (in-test sinks keep serving); returns (exit code, stdout, stderr)."""
    import sys

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "relay", "--config", str(config), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return int(proc.returncode or 0), out.decode(), err.decode()


def make_cert(directory: Any, name: str = "localhost", *, days: float = 1) -> tuple[Any, Any]:
    """A self-signed CA certificate for ``name`` and 127.0.0.1, valid ``days`` from now,
    written as ``cert.pem``/``key.pem`` in ``directory`` (a second call replaces them, as
    a certificate renewal does); trust it with SSL_CERT_FILE."""
    import ipaddress
    from datetime import timedelta
    from pathlib import Path

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    san = [x509.DNSName(name), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = Path(directory) / "cert.pem", Path(directory) / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@dataclass
class Load:
    """What one load client saw: tokens answered 250, SMTP error replies, sessions cut."""

    acked: list[str] = field(default_factory=list)
    replies: Counter[str] = field(default_factory=Counter)
    cut: int = 0


async def send_until(
    stop: asyncio.Event,
    port: int,
    alias: str,
    *,
    token: str,
    subject: str,
    timeout: float = 10.0,
    survive_disconnects: bool = False,
) -> Load:
    """One connection per message until ``stop``, each message with its own token in the
    Subject (``f"{subject} {token}-{n}"``). Connection errors fail the caller unless
    ``survive_disconnects`` (a test that kills the server on purpose)."""
    seen = Load()
    n = 0
    while not stop.is_set():
        n += 1
        mark = f"{token}-{n}"
        data = message(BUYER, alias, subject=f"{subject} {mark}").as_bytes()
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=timeout, start_tls=False)
        try:
            await smtp.connect()
            await smtp.sendmail(BUYER, [alias], data)
            seen.acked.append(mark)
            with contextlib.suppress(Exception):
                await smtp.quit()
        except aiosmtplib.SMTPResponseException as err:
            if err.code > 0:
                seen.replies[f"{err.code} {err.message[:60]}"] += 1
            seen.cut += err.code <= 0
            smtp.close()
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            if not survive_disconnects:
                raise
            seen.cut += 1
            smtp.close()
            await asyncio.sleep(0.05)
    return seen


async def create_order(relay: Any, **fields: Any) -> Any:
    """The test order (ORDER, BUYER, SELLER on DOMAIN) in a running relay's database;
    ``fields`` override or add any of relay.store.orders.create_order's keywords."""
    from relay.store import orders

    order_id = fields.pop("order_id", ORDER)
    args: dict[str, Any] = {"buyer": BUYER, "seller": SELLER, **fields}
    return await orders.create_order(relay.engine, DOMAIN, order_id, **args)
