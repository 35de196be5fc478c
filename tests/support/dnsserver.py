"""A real authoritative DNS server on loopback for tests (UDP and TCP, one port).

Why a real server rather than mocks: the relay's SPF, DKIM, DMARC and direct-MX code paths
all go through ``dns.asyncresolver``; serving real packets exercises timeouts, truncation,
TCP fallback and rcode handling exactly as production does.

It runs in daemon threads, so it serves sync code and any asyncio loop alike.
"""

from __future__ import annotations

import socket
import socketserver
import struct
import threading
from collections import defaultdict
from types import TracebackType

import dns.asyncresolver
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.SPF
import dns.rdtypes.ANY.TXT
import dns.rrset

_MAX_UDP = 512


def _norm(name: str) -> dns.name.Name:
    return dns.name.from_text(name.rstrip(".") + ".")


def _txt(value: str, rdtype: int = dns.rdatatype.TXT) -> dns.rdata.Rdata:
    """A TXT rdata with the value split into <=255-byte character strings (RFC 7208 §3.3)."""
    raw = value.encode()
    chunks = [raw[i : i + 255] for i in range(0, len(raw), 255)] or [b""]
    return _strings(chunks, rdtype)


def _strings(chunks: list[bytes], rdtype: int = dns.rdatatype.TXT) -> dns.rdata.Rdata:
    """A TXT-shaped rdata (TXT or the obsolete SPF type 99) with exactly these strings."""
    cls = dns.rdtypes.ANY.TXT.TXT if rdtype == dns.rdatatype.TXT else dns.rdtypes.ANY.SPF.SPF
    return cls(dns.rdataclass.IN, rdtype, chunks)


class DNSServer:
    """Authoritative loopback DNS: ``add()`` records, ``start()``, point a resolver at it.

    Unknown names get NXDOMAIN; a known name without the asked type gets NOERROR with an
    empty answer (NODATA). ``fail(name)`` answers SERVFAIL, ``drop(name)`` never answers
    (for timeout tests; ``drop(name, rtype)`` only for that type). CNAMEs are followed
    inside the zone data.
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self._records: dict[dns.name.Name, dict[int, list[tuple[dns.rdata.Rdata, int]]]] = (
            defaultdict(lambda: defaultdict(list))
        )
        self._fail: set[dns.name.Name] = set()
        self._drop: set[dns.name.Name] = set()
        self._drop_types: set[tuple[dns.name.Name, int]] = set()
        self._lock = threading.Lock()
        self._udp: socketserver.ThreadingUDPServer | None = None
        self._tcp: socketserver.ThreadingTCPServer | None = None
        self._threads: list[threading.Thread] = []
        self.queries: list[tuple[str, str]] = []  # (name, type) log for assertions

    # ----------------------------------------------------------------- zone data
    def add(self, name: str, rtype: str, value: str, ttl: int = 60) -> None:
        """Add one record; TXT (and type SPF) values are split into 255-byte strings."""
        rdtype = dns.rdatatype.from_text(rtype.upper())
        if rdtype in (dns.rdatatype.TXT, dns.rdatatype.SPF):
            rdata = _txt(value, rdtype)
        else:
            rdata = dns.rdata.from_text(
                dns.rdataclass.IN, rdtype, value, origin=dns.name.root, relativize=False
            )
        with self._lock:
            self._records[_norm(name)][rdtype].append((rdata, ttl))

    def add_strings(
        self, name: str, strings: list[str | bytes], rtype: str = "TXT", ttl: int = 60
    ) -> None:
        """Add a TXT (or SPF) record made of exactly these character strings, unsplit.

        For tests of how strings are joined (RFC 7208 §3.3) and of empty records; each
        string must be at most 255 bytes.
        """
        rdtype = dns.rdatatype.from_text(rtype.upper())
        chunks = [s.encode() if isinstance(s, str) else s for s in strings]
        with self._lock:
            self._records[_norm(name)][rdtype].append((_strings(chunks, rdtype), ttl))

    def remove(self, name: str, rtype: str | None = None) -> None:
        """Forget records of ``name`` (all types when ``rtype`` is None)."""
        key = _norm(name)
        with self._lock:
            if rtype is None:
                self._records.pop(key, None)
            elif key in self._records:
                self._records[key].pop(dns.rdatatype.from_text(rtype.upper()), None)

    def fail(self, name: str) -> None:
        """Answer SERVFAIL for every query about ``name``."""
        with self._lock:
            self._fail.add(_norm(name))

    def drop(self, name: str, rtype: str | None = None) -> None:
        """Never answer queries about ``name`` (the client times out).

        With ``rtype``, only queries of that type go unanswered; others are served.
        """
        with self._lock:
            if rtype is None:
                self._drop.add(_norm(name))
            else:
                self._drop_types.add((_norm(name), dns.rdatatype.from_text(rtype.upper())))

    # ----------------------------------------------------------------- answering
    def _answer(self, query: dns.message.Message) -> dns.message.Message | None:
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if not query.question:
            response.set_rcode(dns.rcode.FORMERR)
            return response
        q = query.question[0]
        with self._lock:
            self.queries.append((q.name.to_text(), dns.rdatatype.to_text(q.rdtype)))
            if q.name in self._drop or (q.name, q.rdtype) in self._drop_types:
                return None
            if q.name in self._fail:
                response.set_rcode(dns.rcode.SERVFAIL)
                return response
            name = q.name
            for _ in range(8):  # follow CNAME chains inside our data
                node = self._records.get(name)
                if node is None:
                    if name == q.name:
                        response.set_rcode(dns.rcode.NXDOMAIN)
                    return response
                wanted = node.get(q.rdtype)
                if wanted:
                    response.answer.append(self._rrset(name, q.rdtype, wanted))
                    return response
                cname = node.get(dns.rdatatype.CNAME)
                if not cname or q.rdtype == dns.rdatatype.CNAME:
                    return response
                response.answer.append(self._rrset(name, dns.rdatatype.CNAME, cname))
                name = cname[0][0].target  # type: ignore[attr-defined]
            return response

    @staticmethod
    def _rrset(
        name: dns.name.Name, rdtype: int, items: list[tuple[dns.rdata.Rdata, int]]
    ) -> dns.rrset.RRset:
        rrset = dns.rrset.RRset(name, dns.rdataclass.IN, rdtype)
        for rdata, ttl in items:
            rrset.add(rdata, ttl)
        return rrset

    def _handle(self, wire: bytes, udp: bool) -> bytes | None:
        try:
            query = dns.message.from_wire(wire)
        except Exception:
            return None
        response = self._answer(query)
        if response is None:
            return None
        try:
            return response.to_wire(max_size=_MAX_UDP if udp else 65535)
        except dns.exception.TooBig:  # too big for UDP: empty answer with TC, client retries TCP
            truncated = dns.message.make_response(query)
            truncated.flags |= dns.flags.AA | dns.flags.TC
            return truncated.to_wire()

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> DNSServer:
        """Bind UDP and TCP on the same ephemeral port and serve in daemon threads."""
        server = self

        class _Udp(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                data, sock = self.request
                reply = server._handle(data, udp=True)
                if reply is not None:
                    sock.sendto(reply, self.client_address)

        class _Tcp(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                sock: socket.socket = self.request
                sock.settimeout(5)
                try:
                    while True:
                        head = sock.recv(2, socket.MSG_WAITALL)
                        if len(head) < 2:
                            return
                        (length,) = struct.unpack("!H", head)
                        data = sock.recv(length, socket.MSG_WAITALL)
                        reply = server._handle(data, udp=False)
                        if reply is None:
                            return
                        sock.sendall(struct.pack("!H", len(reply)) + reply)
                except OSError:
                    return

        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        for _ in range(20):
            udp_cls = type("U", (socketserver.ThreadingUDPServer,), {"address_family": family})
            tcp_cls = type("T", (socketserver.ThreadingTCPServer,), {"address_family": family})
            udp = udp_cls((self.host, 0), _Udp)
            port = udp.server_address[1]
            try:
                tcp_cls.allow_reuse_address = True
                tcp = tcp_cls((self.host, port), _Tcp)
            except OSError:
                udp.server_close()
                continue
            break
        else:  # pragma: no cover
            raise RuntimeError("could not bind UDP and TCP on one port")
        udp.daemon_threads = tcp.daemon_threads = True
        self._udp, self._tcp, self.port = udp, tcp, port
        for srv in (udp, tcp):
            t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.01})
            t.daemon = True
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        """Stop serving and close both sockets."""
        for srv in (self._udp, self._tcp):
            if srv is not None:
                srv.shutdown()
                srv.server_close()
        for t in self._threads:
            t.join(timeout=2)
        self._udp = self._tcp = None
        self._threads.clear()

    def __enter__(self) -> DNSServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def resolver(self, timeout: float = 1.0) -> dns.asyncresolver.Resolver:
        """An async resolver that asks only this server, with a short timeout."""
        res = dns.asyncresolver.Resolver(configure=False)
        res.nameservers = [self.host]
        res.port = self.port
        res.timeout = timeout
        res.lifetime = timeout * 2
        res.cache = None
        return res
