"""aiosmtpd's SMTP protocol, hardened for a public MX.

Departures from aiosmtpd's defaults, each for a reason:

- DATA is read in chunks, not line by line: the line reader costs about 23 µs per KB on
  the event loop. The end of data is only ``CRLF.CRLF`` (never a bare-LF variant, the
  SMTP smuggling trick); bare CR/LF and NUL are refused later by the intake check.
- The size limit answers ``552 5.3.4`` after reading to the end, as RFC 5321 4.2.5 wants.
- An unhandled error answers ``451 4.3.0`` instead of aiosmtpd's ``500`` with the
  exception text: our bug must not look like the sender's fault, nor leak internals. A
  failed TLS handshake is the client's business: logged in a line, no traceback.
- Every reply carries an enhanced status code (RFC 2034, advertised in EHLO), aiosmtpd's
  own terse ones included; a second STARTTLS gets ``503 5.5.1``; AUTH is not offered (this
  is an MX, not a submission server).
- SMTPUTF8 (RFC 6531) is on: arguments are UTF-8, and one that is not, or that holds a
  control character, gets ``501 5.5.2`` before any handler sees it, so no undecodable
  text or NUL reaches a log, a hash or a query.
- aiosmtpd's per-command timer is replaced by relay.smtp.gate, which admits, times out
  and evicts sessions with the whole server's load in view.

Every connection gets a session id bound to the logging context for its whole life (the
handler's and the pipeline's lines carry it too). On shutdown the gate drains: idle
sessions get ``421 4.3.2`` at once, a session in a transaction finishes it first.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from types import MethodType
from typing import Any, Protocol, cast

import structlog
from aiosmtpd.smtp import MISSING, SMTP, TLSSetupException, syntax

from relay import malloc, metrics
from relay.core import replies
from relay.core.replies import Reply
from relay.smtp.fastinit import init_smtp
from relay.smtp.gate import (
    DATA,
    PREAMBLE,
    Activity,
    ConnectionGate,
    client_key,
    socket_alive,
)
from relay.smtp.proxy import Network, allowed, parse_xforward
from relay.smtp.session import RelayEnvelope, RelaySession
from relay.smtp.tls import start_tls

__all__ = ["ConnectionGate", "RelaySMTP"]

log = structlog.get_logger("relay.smtp")
DATA_CHUNK = 1 << 16
_YIELD_EVERY = 4  # chunks read between two turns of the event loop
_TERMINATOR = b"\r\n.\r\n"
_SIZE_PARAM = re.compile(r"(?i)\bSIZE=(\d{1,20})\b")
_HAS_ENHANCED = re.compile(r"^\d{3}[ -][245]\.\d{1,3}\.\d{1,3}(?: |$)")
# Enhanced codes for aiosmtpd's own replies, by reply code (RFC 3463).
_ENHANCED = {
    "221": "2.0.0", "250": "2.0.0", "252": "2.5.0", "421": "4.3.0", "451": "4.3.0",
    "500": "5.5.2", "501": "5.5.4", "502": "5.5.1", "503": "5.5.1", "504": "5.5.4",
    "530": "5.7.0", "538": "5.7.11", "550": "5.0.0", "552": "5.3.4", "553": "5.1.3",
    "554": "5.0.0", "555": "5.5.4",
}  # fmt: skip
# Commands that do not move a session forward: they do not reset its idle clock.
_UNPRODUCTIVE = frozenset({"NOOP", "RSET", "VRFY", "EXPN", "HELP"})
_SYNTAX_ATTRS = ("__smtp_syntax__", "__smtp_syntax_when__", "__smtp_syntax_extended__")
_TRACKED: dict[type, dict[str, Callable[[Any, Any], Awaitable[None]]]] = {}  # per class


class _NoTimer:
    """Stands in for aiosmtpd's per-command timer handle (the gate keeps time)."""

    def cancel(self) -> None:
        pass


_NO_TIMER: Any = _NoTimer()


def with_enhanced_code(text: str) -> str:
    """``503 Error: ...`` -> ``503 5.5.1 Error: ...``; replies that have one, and codes
    without an obvious class (220 banner, 354), are left alone."""
    code = text[:3]
    if code not in _ENHANCED or _HAS_ENHANCED.match(text) or text[3:4] not in (" ", "-", ""):
        return text
    sep = text[3:4] or " "
    return f"{code}{sep}{_ENHANCED[code]} {text[4:]}".rstrip()


_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _clean_argument(arg: str) -> bool:
    """False if the argument holds a control character (NUL above all: no address,
    database or log line should ever see one) or bytes that are not UTF-8 (aiosmtpd keeps
    those as lone surrogates, which break every encoder downstream)."""
    if _CONTROL.search(arg):
        return False
    try:
        arg.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class _ReaderInternals(Protocol):
    """The private parts of asyncio.StreamReader that _read_data uses (pinned in
    tests/core/test_aiosmtpd_pins.py)."""

    _limit: int
    _buffer: bytearray


class RelaySMTP(SMTP):
    # What _create_session/_create_envelope below make (aiosmtpd declares its base
    # classes), and the transport of a stream protocol (aiosmtpd says BaseTransport).
    session: RelaySession | None
    envelope: RelayEnvelope | None
    transport: asyncio.Transport | None
    # aiosmtpd leaves these unannotated; their types as we use them (pinned, with every
    # other aiosmtpd internal we rely on, in tests/core/test_aiosmtpd_pins.py).
    _set_post_data_state: Callable[[], None]

    def __init__(
        self,
        handler: Any,
        *,
        gate: ConnectionGate,
        proxy_networks: list[Network] | None = None,
        xforward_networks: list[Network] | None = None,
        **kwargs: Any,
    ) -> None:
        # aiosmtpd's __init__ less its per-connection introspection (~1.5 ms each)
        init_smtp(self, handler, **kwargs)
        self._gate = gate
        self._proxy_networks = proxy_networks
        self._xforward_networks = xforward_networks
        self.xforward_trusted = False
        self._in_data = False
        self._closing = False
        self._admitted = False
        self._command = ""
        self._last_code = 0
        self._goodbye: asyncio.Task[None] | None = None
        self.activity = Activity(hang_up=self._hang_up, begin_drain=self.begin_drain)
        tracked = _TRACKED.get(type(self))
        if tracked is None:  # wrapped once per class, bound per connection
            tracked = _TRACKED[type(self)] = {
                name: self._tracked(name, method.__func__)
                for name, method in self._smtp_methods.items()
            }
        self._smtp_methods = {name: MethodType(run, self) for name, run in tracked.items()}

    @staticmethod
    def _tracked(
        name: str, method: Callable[[Any, Any], Awaitable[None]]
    ) -> Callable[[Any, Any], Awaitable[None]]:
        """Every command: refuse arguments that are not UTF-8, tell the gate when we are
        working (never timed out) and when it is the client's turn again (the idle clock
        restarts only after a productive command that succeeded)."""

        async def run(self: RelaySMTP, arg: str | None) -> None:
            if self.activity.quiet:  # admitted under stress: now it is worth a log line
                self.activity.quiet = False
                assert self.session is not None  # made in connection_made
                log.info("smtp.session.start", peer=_host(self.session.peer))
            if arg is not None and not _clean_argument(arg):
                await self.push(str(replies.BAD_COMMAND_BYTES))
            else:
                self._command = name
                self.activity.busy()
                try:
                    await method(self, arg)
                finally:
                    self._command = ""
                    productive = name not in _UNPRODUCTIVE and 0 < self._last_code < 400
                    self.activity.waiting(productive=productive)
            # The gate counts errors and junk (relay.smtp.gate); and one command per turn
            # of the loop: a client with 100,000 pipelined commands takes turns with others.
            refusal = self._gate.answered(self.activity, name, self._last_code)
            if refusal is not None:
                self._hang_up(refusal)
            await asyncio.sleep(0)

        for attr in _SYNTAX_ATTRS:  # HELP reads these off the method
            if hasattr(method, attr):
                setattr(run, attr, getattr(method, attr))
        return run

    def _create_session(self) -> RelaySession:
        session = RelaySession(self.loop)
        session.relay_id = secrets.token_hex(6)
        self.activity.session = session.relay_id
        return session

    def _create_envelope(self) -> RelayEnvelope:
        return RelayEnvelope()

    def data_received(self, data: bytes) -> None:
        """DATA bytes are counted as they arrive, not as we get round to reading them: a
        busy event loop must not make a fast client look slow."""
        if self.activity.phase == DATA:
            self.activity.data_received(len(data))
        super().data_received(data)

    def _reset_timeout(self, duration: float | None = None) -> None:
        """aiosmtpd's timer only for the PROXY header wait; everything after the banner
        is timed by the gate's sweeper."""
        if self._timeout_handle is not None:
            self._timeout_handle.cancel()
        if duration:
            self._timeout_handle = self.loop.call_later(duration, self._timeout_cb)
        else:
            self._timeout_handle = _NO_TIMER

    async def _handle_client(self) -> None:
        assert self.session is not None  # made in connection_made, before this task
        with structlog.contextvars.bound_contextvars(session=self.session.relay_id):
            if not self._from_allowed_proxy():
                return
            started = time.monotonic()
            try:
                if self._proxy_networks is None and not await self._admit():
                    return
                await super()._handle_client()
            finally:
                if self._admitted:
                    self._gate.leave(self.activity)
                    if self.activity.quiet:  # not a word said, under stress: counted
                        self._gate.note("smtp.session.end", self.activity)
                    else:
                        log.info(
                            "smtp.session.end",
                            peer=_host(self.session.peer),
                            seconds=round(time.monotonic() - started, 3),
                        )

    def _from_allowed_proxy(self) -> bool:
        """With PROXY required, only our balancers may connect: others are closed before
        a byte is read or written."""
        if self._proxy_networks is None:
            return True
        assert self.session is not None and self.transport is not None  # connection_made
        if not allowed(self.session.peer, self._proxy_networks):
            metrics.SMTP_CONNECTIONS.labels(outcome="refused_proxy").inc()
            log.warning("smtp.proxy.refused", peer=_host(self.session.peer))
            self.transport.close()  # not one of our balancers: not a byte, not a banner
            return False
        self.activity.phase = PREAMBLE
        return True

    def _client_key(self) -> str | None:
        """The address the per-client cap counts; None for a trusted front end that has
        not (yet) named its client: Postfix before XFORWARD, a balancer's health check."""
        assert self.session is not None  # made in connection_made
        if self._xforward_networks is not None:
            self.xforward_trusted = allowed(self.session.peer, self._xforward_networks)
            if self.xforward_trusted:
                return None
        if self._proxy_networks is not None and not hasattr(self.session, "proxy_peer"):
            return None
        return client_key(_host(self.session.peer))

    async def _admit(self) -> bool:
        """Before the banner: the gate admits the session (perhaps by evicting an idle
        one) or we answer 421 and close."""
        assert self.session is not None  # made in connection_made
        sock = self.transport.get_extra_info("socket") if self.transport else None
        if sock is not None:  # at the cap, a newcomer already gone evicts nobody
            self.activity.alive = lambda: socket_alive(sock)
        # the connection rate of a client named by a PROXY header is counted here; a
        # direct client's was counted before its session existed (relay.smtp.listener)
        proxied = hasattr(self.session, "proxy_peer")
        rate_of = _host(self.session.peer) if proxied else None
        refusal = self._gate.admit(self.activity, self._client_key(), rate_of=rate_of)
        if refusal is not None:
            if self._gate.quiet:
                self._gate.note("smtp.connection.refused")
            else:
                log.info(
                    "smtp.connection.refused", reply=str(refusal), peer=_host(self.session.peer)
                )
            await super().push(str(refusal))
            if self.transport is not None:  # None once the client has gone meanwhile
                self.transport.close()
            return False
        self._admitted = True
        self.activity.waiting()
        # under stress a session is logged from its first command on (relay.smtp.gate)
        self.activity.quiet = self._gate.quiet
        if not self.activity.quiet:
            log.info("smtp.session.start", peer=_host(self.session.peer))
        return True

    async def _call_handler_hook(self, command: str, *args: Any) -> Any:
        """After a PROXY header the real client is known: admit it now, by its address."""
        status = await super()._call_handler_hook(command, *args)
        if command == "PROXY" and status is not MISSING and status and not await self._admit():
            return False
        return status

    def _hang_up(self, reply: Reply) -> None:
        """The gate's way out: a last reply, then close (abort if the client does not read,
        or the socket would linger with its unsent bytes)."""
        if self._closing or self.transport is None:
            return
        self._closing = True
        try:
            self._writer.write(f"{reply}\r\n".encode())
        except (OSError, RuntimeError):
            pass
        if self.transport.get_write_buffer_size() > 0:
            self.transport.abort()
        else:
            self.transport.close()

    async def smtp_XFORWARD(self, arg: str) -> None:
        """Postfix's before-queue proxy tells us its client (XFORWARD_README): the real
        address and HELO then stand in for Postfix's, exactly as with a PROXY header."""
        assert self.session is not None  # made in connection_made
        if not self.xforward_trusted:
            await self.push(str(replies.NOT_IMPLEMENTED))
            return
        if self.envelope is not None and self.envelope.mail_from is not None:
            await self.push(str(replies.XFORWARD_IN_TRANSACTION))
            return
        try:
            attrs = parse_xforward(arg or "")
        except ValueError:
            await self.push(str(replies.XFORWARD_SYNTAX))
            return
        if "addr" in attrs:
            refusal = self._gate.rekey(self.activity, client_key(attrs["addr"]), attrs["addr"])
            if refusal is not None:
                log.info("smtp.connection.refused", reply=str(refusal), peer=attrs["addr"])
                self._hang_up(refusal)
                return
            self.session.proxy_peer = self.session.peer
            self.session.peer = (attrs["addr"], int(attrs.get("port", "0") or 0))
            log.info("smtp.xforward", client=attrs["addr"])
        if "helo" in attrs:
            self.session.host_name = attrs["helo"]
        await self.push(str(replies.COMMAND_OK))

    @syntax("STARTTLS", when="tls_context")
    async def smtp_STARTTLS(self, arg: str) -> None:
        """Once only (RFC 3207 4.2); the handshake is the client's to finish, timed as a
        wait for a command."""
        if self._tls_protocol is not None:
            await self.push(str(replies.TLS_ACTIVE))
            return
        if not self.tls_context:  # not offered in EHLO either: not a temporary condition
            await self.push(str(replies.STARTTLS_UNAVAILABLE))
            return
        if arg:
            await self.push(str(replies.STARTTLS_SYNTAX))
            return
        self.activity.waiting()
        await start_tls(self)  # aiosmtpd's upgrade with a lean TLS layer (relay.smtp.tls)

    async def smtp_AUTH(self, arg: str) -> None:
        await self.push(str(replies.AUTH_UNSUPPORTED))

    def _busy(self) -> bool:
        """In a transaction: MAIL given and not yet answered after DATA."""
        return self._in_data or (self.envelope is not None and self.envelope.mail_from is not None)

    def begin_drain(self) -> None:
        if not self._busy():
            self._goodbye = asyncio.ensure_future(self._say_goodbye())

    async def _say_goodbye(self) -> None:
        if self._closing or self.transport is None:
            return
        self._closing = True
        try:
            await super().push(str(replies.SHUTTING_DOWN))
        except (OSError, RuntimeError):
            pass
        if self.transport is not None:
            self.transport.close()

    async def push(self, status: str | bytes) -> None:
        """Every reply gets an enhanced code; a reply the client does not read is the
        client's turn for the gate; after each reply a draining session with no open
        transaction says goodbye."""
        text = status if isinstance(status, str) else status.decode("utf-8", "replace")
        if self._command not in ("EHLO", "HELO") or text[:1] != "2":  # RFC 2034 exempts
            text = with_enhanced_code(text)  # the positive HELO/EHLO reply only
        if text[:3].isdigit():
            self._last_code = int(text[:3])
        stuck = self.transport is not None and self.transport.get_write_buffer_size() > 0
        if stuck:
            self.activity.writing(True)
        try:
            await super().push(text)
        finally:
            if stuck:
                self.activity.writing(False)
        final = text[3:4] != "-" and not text.startswith("221")  # not mid-reply, not QUIT
        if self._gate.draining and final and not self._busy():
            await self._say_goodbye()

    async def handle_exception(self, error: Exception) -> str:
        if isinstance(error, TLSSetupException):
            cause = error.__cause__
            log.info("smtp.tls.failed", error=type(cause).__name__ if cause else "unknown")
            return str(replies.TEMP_FAILURE)  # not sent: aiosmtpd closes the connection
        log.error("smtp.internal_error", error=type(error).__name__, exc_info=error)
        return str(replies.TEMP_FAILURE)

    async def smtp_MAIL(self, arg: str) -> None:
        """Answer an oversized SIZE= declaration with our enhanced code, not aiosmtpd's text."""
        m = _SIZE_PARAM.search(arg or "")
        limit = self.data_size_limit or 0
        if m and limit and int(m.group(1)) > limit and self.session and self.session.host_name:
            await self.push(str(replies.TOO_BIG))
            return
        await super().smtp_MAIL(arg)

    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push(str(replies.NEED_RCPT))
            return
        if arg:
            await self.push(str(replies.DATA_SYNTAX))
            return
        self._in_data = True
        try:
            await self.push(str(replies.START_DATA))
            self.activity.data_begins()  # the gate now watches the data rate
            data = await self._read_data()
            self.activity.busy()
            started = time.monotonic()
            if data is None:
                status: Any = str(replies.TOO_BIG)
            else:
                self.envelope.content = self.envelope.original_content = data
                status = await self._call_handler_hook("DATA")
                status = "250 OK" if status is MISSING else status
        finally:
            self._in_data = False
        self._set_post_data_state()
        await self.push(status)
        metrics.observe_data(time.monotonic() - started, status)
        if data is not None and len(data) >= malloc.TRIM_AFTER:
            del data  # its pages go back to the system (relay.malloc), off the loop
            asyncio.get_running_loop().run_in_executor(None, malloc.trim)

    async def _read_data(self) -> bytes | None:
        """Read to CRLF.CRLF and undo dot-stuffing; None if over the size limit."""
        reader = self._reader
        # StreamReader has no public way to change its limit or push bytes back: its
        # private attributes, typed by _ReaderInternals (typeshed does not declare them)
        inside = cast(_ReaderInternals, reader)
        limit = self.data_size_limit or 0
        saved_limit = inside._limit
        inside._limit = DATA_CHUNK * 4  # fewer pauses between chunks
        buf = bytearray(b"\r\n")  # stands for the CRLF ending "DATA", so ".\r\n" ends at once
        scan_from, too_big, chunks = 0, False, 0
        try:
            while True:
                chunk = await reader.read(DATA_CHUNK)
                if not chunk:
                    raise ConnectionResetError("connection closed during DATA")
                chunks += 1
                if chunks % _YIELD_EVERY == 0:
                    # read() does not suspend while bytes are buffered: a fast client's
                    # megabytes would otherwise be copied and scanned in one go
                    await asyncio.sleep(0)
                buf += chunk
                end = buf.find(_TERMINATOR, scan_from)
                if end >= 0:
                    leftover = bytes(buf[end + len(_TERMINATOR) :])
                    if leftover:  # pipelined commands after the data: give them back
                        inside._buffer[:0] = leftover
                    del buf[end + 2 :]
                    break
                if too_big or (limit and len(buf) - 2 > limit):
                    too_big = True  # read on to the end, keeping only a possible terminator
                    del buf[: len(buf) - 4]
                scan_from = max(0, len(buf) - 4)
        finally:
            inside._limit = saved_limit
        if too_big:
            return None
        data = bytes(buf[2:])
        if limit and len(data) > limit:
            return None
        if data.startswith(b"."):
            data = data[1:]
        return data.replace(b"\r\n.", b"\r\n")


def _host(peer: Any) -> str:
    return str(peer[0]) if isinstance(peer, tuple) and peer else str(peer)
