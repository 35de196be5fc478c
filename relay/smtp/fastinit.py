"""aiosmtpd's ``SMTP.__init__`` without its introspection on every connection.

aiosmtpd 1.4 builds its command, hook and AUTH tables per connection with
``inspect.getmembers``/``dir`` over the protocol and the handler, inspects the EHLO hook's
signature and logs a line: ~1.5 ms of the event loop per connection, before the session
has said a word. Under a connect-and-drop flood that was most of the relay's work (issue
10): asyncio's accept loop built 2,000 protocols in one turn and a legitimate client's
EHLO waited more than 10 s. The tables depend only on the class and the handler, so they
are built once and bound per connection here; everything else is set exactly as
aiosmtpd's ``__init__`` sets it (tests/core/test_redteam_slow.py compares the two).
"""

from __future__ import annotations

import asyncio
import inspect
import socket
from dataclasses import dataclass
from types import MethodType
from typing import Any

import aiosmtpd.smtp as _aiosmtpd
from aiosmtpd.smtp import SMTP, _AuthMechAttr, login_always_fail


@dataclass(frozen=True)
class _Tables:
    commands: dict[str, Any]  # name -> function (unbound), as the class has it
    hooks: dict[str, Any]  # name -> the handler's bound hook
    auth: dict[str, tuple[Any, bool]]  # mechanism -> (function or hook, built in)
    ehlo_hook_ver: str | None


_CACHE: dict[tuple[type, int], tuple[Any, _Tables]] = {}
_FQDN: list[str] = []


def _build(cls: type, handler: Any) -> _Tables:
    commands = {m[5:]: getattr(cls, m) for m in dir(cls) if m.startswith("smtp_")}
    hooks = {m[7:]: getattr(handler, m) for m in dir(handler) if m.startswith("handle_")}
    auth: dict[str, tuple[Any, bool]] = {}
    for obj, builtin in ((cls, True), (handler, False)):
        for name, func in inspect.getmembers(obj):
            if name.startswith("auth_"):
                default = name.replace("auth_", "").replace("__", "-")
                mech = getattr(func, "__auth_mechanism_name__", default)
                auth[mech] = (func, builtin)
    ehlo = hooks.get("EHLO")
    version = None
    if ehlo is not None:
        arity = len(inspect.signature(ehlo).parameters)
        if arity not in (4, 5):
            raise RuntimeError("Unsupported EHLO Hook")
        version = "old" if arity == 4 else "new"
    return _Tables(commands, hooks, auth, version)


def tables(cls: type, handler: Any) -> _Tables:
    """The class's and handler's tables, built on first use (the handler is kept alive by
    the cache entry, so its id cannot be reused while the entry lives)."""
    key = (cls, id(handler))
    entry = _CACHE.get(key)
    if entry is None or entry[0] is not handler:
        entry = _CACHE[key] = (handler, _build(cls, handler))
    return entry[1]


def init_smtp(
    proto: SMTP,
    handler: Any,
    *,
    data_size_limit: int | None = 33554432,
    enable_SMTPUTF8: bool = False,
    decode_data: bool = False,
    hostname: str | None = None,
    ident: str | None = None,
    tls_context: Any = None,
    require_starttls: bool = False,
    timeout: float = 300,
    proxy_protocol_timeout: float | None = None,
    loop: asyncio.AbstractEventLoop | None = None,
) -> None:
    """What ``SMTP.__init__`` does for these arguments (AUTH left at its defaults: this
    relay offers none), with the tables from :func:`tables`."""
    self: Any = proto
    self.__ident__ = ident or _aiosmtpd.__ident__
    self.loop = loop if loop else asyncio.get_event_loop()
    asyncio.StreamReaderProtocol.__init__(
        self,
        asyncio.StreamReader(loop=self.loop, limit=self.line_length_limit),
        client_connected_cb=self._cb_client_connected,
        loop=self.loop,
    )
    self.event_handler = handler
    self.data_size_limit = data_size_limit
    self.enable_SMTPUTF8 = enable_SMTPUTF8
    self._decode_data = decode_data
    self.command_size_limits.clear()
    if not hostname:
        if not _FQDN:
            _FQDN.append(socket.getfqdn())
        hostname = _FQDN[0]
    self.hostname = hostname
    self.tls_context = tls_context
    self.require_starttls = tls_context and require_starttls
    self._timeout_duration = timeout
    self._timeout_handle = None
    self._tls_handshake_okay = True
    self._tls_protocol = None
    self._original_transport = None
    self.session = None
    self.envelope = None
    self.transport = None
    self._handler_coroutine = None
    self._auth_require_tls = True
    if proxy_protocol_timeout is not None and proxy_protocol_timeout <= 0:
        raise ValueError("proxy_protocol_timeout must be > 0")
    self._proxy_timeout = proxy_protocol_timeout
    self._auth_callback = login_always_fail
    self._authenticator = None
    self._auth_required = False
    t = tables(type(self), handler)
    self._auth_methods = {
        mech: _AuthMechAttr(MethodType(func, self) if builtin else func, builtin)
        for mech, (func, builtin) in t.auth.items()
    }
    self._handle_hooks = dict(t.hooks)
    self._ehlo_hook_ver = t.ehlo_hook_ver
    self._smtp_methods = {name: MethodType(func, self) for name, func in t.commands.items()}
    self._enforce_call_limit = False
