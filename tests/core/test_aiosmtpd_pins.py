"""The aiosmtpd internals relay.smtp relies on, pinned in one place.

relay.smtp subclasses aiosmtpd's ``SMTP``, overrides some of its private methods, sets
its private attributes without its ``__init__`` (relay.smtp.fastinit) and redoes its
STARTTLS with a leaner TLS layer (relay.smtp.tls). None of that is aiosmtpd's public
contract, so an upgrade could change it without a word; this file makes it fail here,
loudly and by name, instead of somewhere in an SMTP session.

* Every private name of an aiosmtpd object that relay/smtp touches is in ``PRIVATE``
  (with what we use it for) and still exists; a new reliance must be added here.
* Every SMTP method RelaySMTP overrides keeps aiosmtpd's parameters and async-ness.
* Each ``handle_*`` hook of RelayHandler takes what aiosmtpd passes it.
* The STARTTLS steps relay.smtp.tls repeats are still aiosmtpd's steps.
* The asyncio internals beside them (StreamReader, SSLProtocol) are still there.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
from asyncio import sslproto
from pathlib import Path
from typing import Any

import aiosmtpd
import aiosmtpd.smtp as aiosmtpd_smtp
from aiosmtpd.proxy_protocol import V2_CMD, ProxyData
from aiosmtpd.smtp import SMTP, Envelope, Session

from relay.smtp.gate import ConnectionGate, Limits
from relay.smtp.handler import RelayHandler
from relay.smtp.server import RelaySMTP

SMTP_DIR = Path(__file__).resolve().parents[2] / "relay" / "smtp"

# aiosmtpd's private names that relay/smtp uses, and what for.
PRIVATE = {
    # set by relay.smtp.fastinit exactly as SMTP.__init__ sets them
    "_auth_callback": "fastinit: AUTH left at aiosmtpd's default (login_always_fail)",
    "_auth_methods": "fastinit: the AUTH table, built once per class",
    "_auth_require_tls": "fastinit",
    "_auth_required": "fastinit",
    "_authenticator": "fastinit",
    "_cb_client_connected": "fastinit: the StreamReaderProtocol callback",
    "_decode_data": "fastinit",
    "_ehlo_hook_ver": "fastinit: the EHLO hook's calling convention",
    "_enforce_call_limit": "fastinit",
    "_handle_hooks": "fastinit: the handler's hooks, built once per handler",
    "_handler_coroutine": "fastinit",
    "_original_transport": "fastinit, tls.start_tls: the transport under TLS",
    "_proxy_timeout": "fastinit: the PROXY header wait",
    "_smtp_methods": "fastinit, server: the command table, each wrapped for the gate",
    "_timeout_duration": "fastinit",
    "_timeout_handle": "server._reset_timeout: the timer the gate replaces",
    "_tls_handshake_okay": "fastinit",
    "_tls_protocol": "fastinit, tls.start_tls",
    # methods RelaySMTP overrides or calls
    "_call_handler_hook": "server: admit a PROXY client once its address is known",
    "_create_envelope": "server: RelayEnvelope instead of Envelope",
    "_create_session": "server: RelaySession instead of Session",
    "_handle_client": "server: the gate and the session log around aiosmtpd's loop",
    "_reset_timeout": "server: aiosmtpd's timer only for the PROXY header",
    "_set_post_data_state": "server.smtp_DATA: a fresh envelope after DATA",
    "_timeout_cb": "server._reset_timeout: what aiosmtpd's timer calls",
    # set per connection by SMTP._cb_client_connected
    "_reader": "server._read_data: DATA read in chunks",
    "_writer": "server._hang_up: the last reply written without waiting",
}
# Module-level names of aiosmtpd that relay/smtp imports.
MODULE_NAMES = {
    "aiosmtpd.smtp": {
        "MISSING", "SMTP", "Envelope", "Session", "TLSSetupException", "syntax",
        "_AuthMechAttr", "login_always_fail",
    },
    "aiosmtpd.proxy_protocol": {"ProxyData", "V2_CMD"},
    "aiosmtpd.controller": {"Controller"},
    "aiosmtpd.handlers": {"Mailbox"},
}  # fmt: skip


class _Hooks:
    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:  # fmt: skip
        return responses


async def _smtp() -> SMTP:
    """aiosmtpd's own protocol object, connected to nothing, as its __init__ makes it."""
    return SMTP(_Hooks(), loop=asyncio.get_running_loop())


def _sources() -> dict[str, ast.Module]:
    """The relay/smtp modules that import aiosmtpd (only those meet its objects)."""
    out = {}
    for path in sorted(SMTP_DIR.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), path.name)
        if any(
            isinstance(n, ast.ImportFrom | ast.Import)
            and any(
                (getattr(n, "module", None) or a.name).startswith("aiosmtpd") for a in n.names
            )
            for n in ast.walk(tree)
        ):
            out[path.name] = tree
    return out


def test_only_relay_smtp_imports_aiosmtpd() -> None:
    relay = SMTP_DIR.parent
    outside = []
    for path in sorted(relay.rglob("*.py")):
        if path.parent == SMTP_DIR:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(n.split(".")[0] == "aiosmtpd" for n in names):
                outside.append(path.relative_to(relay.parent).as_posix())
    assert outside == []


def test_the_aiosmtpd_names_we_import_exist() -> None:
    imported: dict[str, set[str]] = {}
    for tree in _sources().values():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("aiosmtpd"):
                imported.setdefault(node.module or "", set()).update(a.name for a in node.names)
    assert imported == MODULE_NAMES  # a new import is pinned here too
    assert isinstance(aiosmtpd_smtp.__ident__, str)  # fastinit: the banner's default
    import importlib

    for module, names in MODULE_NAMES.items():
        missing = {n for n in names if not hasattr(importlib.import_module(module), n)}
        assert not missing, f"aiosmtpd {aiosmtpd.__version__}: {module} lost {missing}"


async def test_every_private_name_we_touch_is_pinned_and_still_there() -> None:
    theirs = set(dir(SMTP)) | set(vars(await _smtp()))
    touched: dict[str, set[str]] = {}
    for name, tree in _sources().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute):  # self._x, server._x, reader._x
                found = node.attr
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):  # overrides
                found = node.name
            else:
                continue
            if found.startswith("_") and not found.startswith("__"):
                touched.setdefault(found, set()).add(name)
    connection_attrs = {"_reader", "_writer"}  # set when a client connects, not in __init__
    relied = {n for n in touched if n in theirs} | (connection_attrs & set(touched))
    assert relied - set(PRIVATE) == set(), "pin these aiosmtpd internals in PRIVATE"
    assert set(PRIVATE) - relied == set(), "no longer used: take them out of PRIVATE"
    gone = set(PRIVATE) - theirs - connection_attrs
    assert not gone, f"aiosmtpd {aiosmtpd.__version__} no longer has {sorted(gone)}"
    source = inspect.getsource(SMTP._cb_client_connected)
    assert "self._reader = reader" in source and "self._writer = writer" in source


def _shape(func: Any) -> tuple[list[tuple[str, Any]], bool]:
    params = inspect.signature(func).parameters.values()
    return [(p.name, p.kind) for p in params], inspect.iscoroutinefunction(func)


def test_overridden_methods_keep_aiosmtpd_signatures() -> None:
    overridden = [
        name
        for name, value in vars(RelaySMTP).items()
        if callable(value) and name != "__init__" and callable(getattr(SMTP, name, None))
    ]
    assert {"_call_handler_hook", "_handle_client", "push", "smtp_DATA"} <= set(overridden)
    for name in overridden:
        ours, theirs = getattr(RelaySMTP, name), getattr(SMTP, name)
        if hasattr(theirs, "__wrapped__") or hasattr(ours, "__wrapped__"):
            ours, theirs = inspect.unwrap(ours), inspect.unwrap(theirs)
        (our_params, our_async), (their_params, their_async) = _shape(ours), _shape(theirs)
        assert our_async == their_async, f"{name}: async in one, not the other"
        # Our parameter names may differ (status/arg); their number and kinds may not.
        assert [k for _, k in our_params] == [k for _, k in their_params], name


def test_the_hooks_take_what_aiosmtpd_passes() -> None:
    """``_call_handler_hook(command, *args)`` calls ``hook(server, session, envelope,
    *args)``; the args per command are read from aiosmtpd's own calls."""
    assert "hook(self, self.session, self.envelope, *args)" in inspect.getsource(
        SMTP._call_handler_hook
    )
    passed: dict[str, set[int]] = {}
    for node in ast.walk(ast.parse(inspect.getsource(aiosmtpd_smtp))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "_call_handler_hook"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            passed.setdefault(node.args[0].value, set()).add(len(node.args) - 1)
    hooks = {n[7:]: getattr(RelayHandler, n) for n in dir(RelayHandler) if n.startswith("handle_")}
    assert set(hooks) == {"EHLO", "PROXY", "MAIL", "RCPT", "DATA"}
    for command, hook in hooks.items():
        positional = len(inspect.signature(hook).parameters) - 1  # less self
        expected = 3 + max(passed[command])  # EHLO: the newer form, with the responses
        assert positional == expected, (command, positional, expected)


def test_starttls_is_still_done_the_way_relay_smtp_tls_repeats() -> None:
    source = inspect.getsource(SMTP.smtp_STARTTLS)
    for step in (
        "sslproto.SSLProtocol(",
        "self._original_transport = self.transport",
        "self._original_transport.set_protocol(self._tls_protocol)",
        "self.transport = self._tls_protocol._app_transport",
        "self._tls_protocol.connection_made(self._original_transport)",
        "raise TLSSetupException() from error",
    ):
        assert step in source, f"aiosmtpd's STARTTLS changed: {step!r} is gone"
    assert "_app_transport" in inspect.getsource(sslproto.SSLProtocol.__init__)


async def test_the_fast_init_sets_what_aiosmtpd_init_sets() -> None:
    full = vars(await _smtp())
    lean = vars(RelaySMTP(_Hooks(), gate=ConnectionGate(Limits()), hostname="mx.test",
                          loop=asyncio.get_running_loop()))  # fmt: skip
    assert set(full) <= set(lean), f"SMTP.__init__ sets more now: {set(full) - set(lean)}"


async def test_the_session_envelope_and_proxy_fields_we_read() -> None:
    session = Session(asyncio.get_running_loop())
    assert {"peer", "host_name", "proxy_data"} <= set(vars(session))
    assert {"mail_from", "rcpt_tos", "content", "original_content"} <= set(vars(Envelope()))
    fields = ProxyData.__dataclass_fields__ if hasattr(ProxyData, "__dataclass_fields__") else {}
    assert {"version", "command", "src_addr", "src_port"} <= set(fields) | set(dir(ProxyData))
    assert V2_CMD.LOCAL is not None


async def test_the_asyncio_internals_beside_them() -> None:
    """server._read_data changes a StreamReader's limit and pushes bytes back into its
    buffer (no public way to do either)."""
    reader = asyncio.StreamReader(limit=10)
    assert reader._limit == 10  # type: ignore[attr-defined]
    assert isinstance(reader._buffer, bytearray)  # type: ignore[attr-defined]
