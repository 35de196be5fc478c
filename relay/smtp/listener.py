"""The SMTP listener: cheap checks before a session exists, sessions started in fair turns.

asyncio's own server accepts up to ``backlog`` connections per turn of the loop and
builds a transport, a protocol and a task for each, whatever becomes of it. Under a
connect-and-drop flood at the cap (issue 10) that was 2,000 sessions built per turn for
clients already gone, and a legitimate client's EHLO waited more than 10 s. Postscreen is
the model here: a connection has to pass the cheap tests before an SMTP session is made
for it.

Each turn of the loop the listener

1. accepts at most ``ACCEPT_PER_TURN`` connections; for each, with no object built and
   no log line: the gate's screen (shutdown, connection rate per client address,
   per-client cap; relay.smtp.gate), answered with one ``send`` and a ``close`` (or just
   the close, far over the rate); then a peek drops one that is already gone (reset or
   closed by its client);
2. starts at most ``START_PER_TURN`` sessions from the survivors: first those of calm
   client addresses (at most a tenth of the connection rate limit), round-robin, then
   those of busy addresses once they have waited ``HOLD_OFF`` (sendmail's greet_pause,
   postscreen's greet wait: a connect-and-drop flood has dropped by then, and costs a
   peek instead of a session). A survivor that went away while queued is dropped with a
   peek.

What it sheds is counted (``relay_smtp_connections``; the gate's summary line), never
logged per connection. With ``proxy_networks`` trusted (PROXY or XFORWARD) those front
ends are not screened here: the gate counts their clients by the real address.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from typing import Any

import structlog

from relay import metrics
from relay.smtp.gate import SILENT, ConnectionGate, client_key
from relay.smtp.proxy import Network, allowed

log = structlog.get_logger("relay.smtp")

# A transaction takes some twenty turns of the loop (replies, database round trips), so
# a turn must stay short: these bound it to a few ms while accepting far faster than one
# attacking process can connect.
ACCEPT_PER_TURN = 64  # ~15-20 µs each on the cheap path
START_PER_TURN = 8  # sessions built per turn (~100-200 µs each)
HOLD_OFF = 0.1  # seconds a connection from a busy address waits before its session
ACCEPT_RETRY = 1.0  # seconds without accepting after EMFILE and the like (as asyncio)
_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


def bind(host: str, port: int, backlog: int, *, reuse_port: bool = False) -> list[socket.socket]:
    """Listening sockets for ``host:port``, as ``loop.create_server`` makes them (every
    address the name resolves to; SO_REUSEADDR; IPv6 sockets IPv6 only); with
    ``reuse_port`` SO_REUSEPORT too, so several acceptor processes share the port."""
    infos = socket.getaddrinfo(
        host, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE
    )
    sockets: list[socket.socket] = []
    try:
        for family, type_, proto, _name, address in dict.fromkeys(
            (i[0], i[1], i[2], i[3], i[4]) for i in infos
        ):
            sock = socket.socket(family, type_, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, True)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, True)
            if family == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, True)
            try:
                sock.bind(address)
            except OSError as err:
                raise OSError(
                    err.errno, f"error while attempting to bind on address {address!r}: "
                    f"{err.strerror.lower() if err.strerror else err}"
                ) from None
            sock.listen(backlog)
            sock.setblocking(False)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


class Listener:
    """Serves ``factory``'s protocol on ``sockets`` (what service.Relay needs of an
    ``asyncio.Server``: ``sockets``, ``is_serving``, ``close``, ``wait_closed``)."""

    def __init__(
        self,
        sockets: list[socket.socket],
        factory: Callable[[], asyncio.Protocol],
        gate: ConnectionGate,
        *,
        trusted: list[Network] | None = None,
    ) -> None:
        self.sockets = sockets
        self._factory = factory
        self._gate = gate
        self._trusted = trusted or []
        self._loop = asyncio.get_running_loop()
        self._serving = False
        # accepted, screened, waiting for a session: calm addresses' by address (served
        # round-robin), busy addresses' in order of arrival (served after HOLD_OFF)
        self._calm: OrderedDict[str, deque[tuple[socket.socket, Any]]] = OrderedDict()
        self._busy: deque[tuple[float, str, socket.socket, Any]] = deque()
        self._pending: Counter[str] = Counter()
        self._start_handle: asyncio.Handle | asyncio.TimerHandle | None = None
        self._starting: set[asyncio.Task[Any]] = set()
        self._keys: dict[str, str] = {}  # host -> client_key(host): parsing costs
        self._gone_count = metrics.SMTP_CONNECTIONS.labels(outcome="refused_gone")

    @classmethod
    async def start(
        cls,
        factory: Callable[[], asyncio.Protocol],
        host: str,
        port: int,
        gate: ConnectionGate,
        *,
        backlog: int = 100,
        trusted: list[Network] | None = None,
        reuse_port: bool = False,
    ) -> Listener:
        sockets = bind(host, port, backlog, reuse_port=reuse_port)
        listener = cls(sockets, factory, gate, trusted=trusted)
        listener.serve()
        return listener

    def serve(self) -> None:
        self._serving = True
        for sock in self.sockets:
            self._loop.add_reader(sock.fileno(), self._accept, sock)

    def is_serving(self) -> bool:
        return self._serving

    def close(self) -> None:
        """Stop accepting (the kernel refuses new connections) and drop the queued ones;
        open sessions are the gate's to drain."""
        if not self._serving and not self.sockets:
            return
        self._serving = False
        for sock in self.sockets:
            self._loop.remove_reader(sock.fileno())
            sock.close()
        for queue in self._calm.values():
            for conn, _peer in queue:
                conn.close()
        for _since, _key, conn, _peer in self._busy:
            conn.close()
        self._calm.clear()
        self._busy.clear()
        self._pending.clear()
        if self._start_handle is not None:
            self._start_handle.cancel()
            self._start_handle = None

    async def wait_closed(self) -> None:
        if self._starting:
            await asyncio.gather(*self._starting, return_exceptions=True)

    # --- each turn: accept and screen ------------------------------------------------

    def _accept(self, sock: socket.socket) -> None:
        for _ in range(ACCEPT_PER_TURN):
            try:
                conn, peer = sock.accept()
            except (BlockingIOError, InterruptedError):
                break
            except ConnectionAbortedError:
                continue
            except OSError as err:
                if err.errno not in _RESOURCES:
                    raise
                log.error("smtp.accept.failed", error=err.strerror, retry_in=ACCEPT_RETRY)
                self._loop.remove_reader(sock.fileno())
                self._loop.call_later(ACCEPT_RETRY, self._resume, sock)
                break
            self._screen(conn, peer)
        self._schedule()

    def _resume(self, sock: socket.socket) -> None:
        if self._serving:
            self._loop.add_reader(sock.fileno(), self._accept, sock)

    def _screen(self, conn: socket.socket, peer: Any) -> None:
        conn.setblocking(False)
        host = str(peer[0]) if isinstance(peer, tuple) else str(peer)
        key = self._keys.get(host)
        if key is None:
            if len(self._keys) >= 65536:
                self._keys.clear()
            trusted = self._trusted and allowed(peer, self._trusted)
            key = self._keys[host] = "" if trusted else client_key(host)
        refusal = self._gate.screen(key or None, host, self._pending[key] if key else 0)
        if refusal is not None:
            if refusal is not SILENT:
                try:
                    conn.send(f"{refusal}\r\n".encode())
                except OSError:
                    pass
            conn.close()
            self._gate.shed("smtp.connection.refused")
            return
        if not _alive(conn):
            self._gone(conn)
            return
        self._pending[key] += 1
        if key and not self._gate.calm(key):
            self._busy.append((self._loop.time(), key, conn, peer))
            return
        queue = self._calm.get(key)
        if queue is None:
            queue = self._calm[key] = deque()
        queue.append((conn, peer))

    def _gone(self, conn: socket.socket) -> None:
        conn.close()
        self._gone_count.inc()
        self._gate.shed("smtp.connection.gone")

    # --- each turn: start sessions, one client address after another -------------------

    def _schedule(self) -> None:
        """Start sessions at the next turn, or when the oldest busy one is due."""
        if self._start_handle is not None or not self._serving:
            return
        if self._calm:
            self._start_handle = self._loop.call_soon(self._start_some)
        elif self._busy:
            due = self._busy[0][0] + HOLD_OFF
            self._start_handle = self._loop.call_at(due, self._start_some)

    def _start_some(self) -> None:
        self._start_handle = None
        started = 0
        while self._calm and started < START_PER_TURN:
            key, queue = self._calm.popitem(last=False)
            conn, peer = queue.popleft()
            if queue:
                self._calm[key] = queue  # to the back: every address takes its turn
            started += self._start(key, conn, peer)
        due = self._loop.time() - HOLD_OFF
        while self._busy and started < START_PER_TURN and self._busy[0][0] <= due:
            _since, key, conn, peer = self._busy.popleft()
            started += self._start(key, conn, peer)
        self._schedule()

    def _start(self, key: str, conn: socket.socket, peer: Any) -> int:
        """Build the session for a queued connection (1), or drop it if gone (0)."""
        self._pending[key] -= 1
        if self._pending[key] <= 0:
            del self._pending[key]
        if not _alive(conn):
            self._gone(conn)
            return 0
        task = self._loop.create_task(self._start_session(conn, peer))
        self._starting.add(task)
        task.add_done_callback(self._starting.discard)
        return 1

    async def _start_session(self, conn: socket.socket, peer: Any) -> None:
        try:
            await self._loop.connect_accepted_socket(self._factory, conn)
        except (OSError, RuntimeError) as err:  # gone in the meantime, loop closing
            conn.close()
            log.debug("smtp.accept.dropped", error=type(err).__name__, peer=str(peer))
        except Exception as err:  # our bug in building a session: this connection only
            conn.close()
            log.error("smtp.accept.failed", error=type(err).__name__, exc_info=err)


def _alive(conn: socket.socket) -> bool:
    """False if the client has already reset or closed the connection (a peek, no read):
    an SMTP client says nothing before our banner, so any end of stream means gone."""
    try:
        return conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) != b""
    except (BlockingIOError, InterruptedError):
        return True
    except OSError:
        return False
