"""``relay sink``: a local catch-all mailbox for trying the relay on one machine.

The dev settings (``deploy/relay.dev.toml``) deliver every message to
``127.0.0.1:2526``; ``relay sink serve`` accepts everything there into a Maildir, so a
newcomer can read what the relay really delivered (``list``, ``show``) and answer it as
the recipient's mail client would (``reply``: To, Subject, In-Reply-To and References
taken from the delivered message). Not for production: it accepts any recipient.
"""

from __future__ import annotations

import mailbox
import re
import sys
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import make_msgid
from pathlib import Path

import click

from relay.cli import CliState, StartupError

DEFAULT_MAILDIR = "var/sink"


def _maildir(path: str, *, create: bool) -> mailbox.Maildir:
    if not create and not Path(path, "cur").is_dir():
        raise StartupError(f"no sink Maildir at {path} (start `relay sink serve` first)")
    return mailbox.Maildir(path, create=create)


_WAIT = click.option(
    "--wait",
    default=10.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="seconds to wait for the message to arrive",
)


_KEY = re.compile(r"^(\d+)\.M(\d+)P\d+Q(\d+)")


def _order(key: str) -> tuple[int, int, int, str]:
    """Maildir names start with seconds, microseconds and a counter (unpadded)."""
    m = _KEY.match(key)
    return (int(m[1]), int(m[2]), int(m[3]), key) if m else (0, 0, 0, key)


def _keys(box: mailbox.Maildir) -> list[str]:
    """Message keys oldest first."""
    return sorted(box.keys(), key=_order)


def _load(box: mailbox.Maildir, number: int, wait: float = 0.0) -> EmailMessage:
    """Message ``number``; delivery is asynchronous, so wait up to ``wait`` seconds for
    it to arrive (a reply pasted right after the send would otherwise race the relay)."""
    import time

    deadline = time.monotonic() + wait
    keys = _keys(box)
    while len(keys) < number and time.monotonic() < deadline:
        time.sleep(0.1)
        keys = _keys(box)
    if not 1 <= number <= len(keys):
        raise StartupError(f"no message {number} in the sink ({len(keys)} there)")
    return BytesParser(policy=policy.default).parsebytes(box.get_bytes(keys[number - 1]))


def _text(msg: EmailMessage) -> str:
    from relay.web.mime import text_of

    part = msg.get_body(preferencelist=("plain", "html"))
    return text_of(part) if part is not None else ""


@click.group()
def sink() -> None:
    """A local catch-all mailbox (Maildir) to watch what the relay delivers."""


@sink.command("serve")
@click.option(
    "--listen", default="127.0.0.1:2526", show_default=True, help="host:port to accept SMTP on"
)
@click.option(
    "--maildir", default=DEFAULT_MAILDIR, show_default=True, help="where messages are kept"
)
def serve(listen: str, maildir: str) -> None:
    """Accept every message on LISTEN into MAILDIR until interrupted."""
    import asyncio

    from relay.app import install_signals
    from relay.settings import parse_hostport
    from relay.smtp.sink import Sink

    try:
        host, port = parse_hostport(listen, 2526)
    except ValueError as err:
        raise StartupError(f"--listen: {err}") from None
    Path(maildir).parent.mkdir(parents=True, exist_ok=True)
    server = Sink(host, port, Path(maildir))
    try:
        server.start()
    except (OSError, RuntimeError) as err:
        raise StartupError(f"--listen: cannot listen on {listen}: {err}") from None
    click.echo(f"relay sink: accepting mail on {listen} into {maildir}/", err=True)

    async def wait() -> None:
        stop = asyncio.Event()
        install_signals(stop)
        await stop.wait()

    try:
        asyncio.run(wait())
    finally:
        server.stop()


@sink.command("list")
@click.option("--maildir", default=DEFAULT_MAILDIR, show_default=True, help="the sink's Maildir")
def list_(maildir: str) -> None:
    """One line per received message: number, recipient, From, Subject."""
    if not Path(maildir, "cur").is_dir():
        click.echo(f"the sink is empty (no Maildir at {maildir} yet)")
        return
    box = _maildir(maildir, create=False)
    for number, key in enumerate(_keys(box), 1):
        msg = BytesParser(policy=policy.default).parsebytes(box.get_bytes(key), headersonly=True)
        click.echo(
            f"{number:3}  to {msg.get('X-RcptTo', msg.get('To', ''))}  "
            f"from {msg.get('From', '')}  {msg.get('Subject', '')!s}"
        )


@sink.command("show")
@click.argument("number", type=click.IntRange(min=1))
@click.option("--maildir", default=DEFAULT_MAILDIR, show_default=True, help="the sink's Maildir")
@click.option("--raw", is_flag=True, help="the message as received, not its headers and text")
@_WAIT
def show(number: int, maildir: str, raw: bool, wait: float) -> None:
    """Print message NUMBER (as numbered by `relay sink list`)."""
    msg = _load(_maildir(maildir, create=False), number, wait)
    if raw:
        sys.stdout.buffer.write(msg.as_bytes())
        return
    for name in ("From", "To", "Reply-To", "Subject", "Date", "Message-ID", "In-Reply-To",
                 "References"):
        if msg.get(name):
            click.echo(f"{name}: {msg[name]}")
    click.echo("")
    click.echo(_text(msg).rstrip())


@sink.command("reply")
@click.argument("number", type=click.IntRange(min=1))
@click.option("--from", "sender", required=True, help="the replying party's own address")
@click.option("--body", required=True, help="the text of the reply")
@click.option(
    "--server",
    default=None,
    help="the relay's SMTP host:port (default: smtp.listen of --config/RELAY_CONFIG, "
    "else 127.0.0.1:2525)",
)
@click.option("--maildir", default=DEFAULT_MAILDIR, show_default=True, help="the sink's Maildir")
@_WAIT
@click.pass_obj
def reply(
    state: CliState,
    number: int,
    sender: str,
    body: str,
    server: str | None,
    maildir: str,
    wait: float,
) -> None:
    """Answer message NUMBER as a mail client's Reply button would, through the relay."""
    import smtplib

    from relay.settings import parse_hostport

    if server is None:
        server = state.settings.smtp.listen if state.config else "127.0.0.1:2525"

    original = _load(_maildir(maildir, create=False), number, wait)
    to = original.get("Reply-To") or original.get("From")
    if not to:
        raise StartupError(f"message {number} has no From to reply to")
    subject = str(original.get("Subject", ""))
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = str(to)
    msg["Subject"] = subject if subject.lower().startswith("re:") else f"Re: {subject}"
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    parent = original.get("Message-ID")
    if parent:
        msg["In-Reply-To"] = str(parent)
        msg["References"] = f"{original.get('References', '')} {parent}".strip()
    msg.set_content(body)
    host, port = parse_hostport(server, 25)
    try:
        with smtplib.SMTP(host, port, timeout=30) as smtp:
            smtp.send_message(msg)
    except smtplib.SMTPResponseException as err:
        error = err.smtp_error
        text = error.decode(errors="replace") if isinstance(error, bytes) else error
        raise StartupError(f"the relay refused the reply: {err.smtp_code} {text}") from None
    except smtplib.SMTPRecipientsRefused as err:
        code, message = next(iter(err.recipients.values()))
        raise StartupError(
            f"the relay refused the reply: {code} {message.decode(errors='replace')}"
        ) from None
    except OSError as err:
        raise StartupError(f"--server: cannot reach {server}: {err}") from None
    click.echo(f"replied to message {number} through {server}")
