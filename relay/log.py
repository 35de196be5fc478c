"""Structured logs (structlog): JSON for machines, console for a terminal.

Real addresses never reach a log line: ``mask()`` turns them into a keyed hash, stable
for one deployment (so ops can correlate lines) and useless to anyone without the key.

Everything goes through the standard library's root handler with structlog's
``ProcessorFormatter``, so lines from aiosmtpd, SQLAlchemy or Alembic come out in the same
JSON shape and carry the same context (the SMTP ``session`` id bound by the server) as
our own: one grep for a session id finds every line of it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import sys
from typing import Any

import structlog

_KEY = {"value": b""}
# Third-party loggers that would print envelope addresses or protocol chatter at INFO.
_QUIET = ("mail.log", "aiosqlite", "asyncio")


def set_hash_key(key: bytes) -> None:
    _KEY["value"] = key


def mask(address: str) -> str:
    """A keyed hash of an address: the same address gives the same token in every line."""
    if not address:
        return ""
    digest = hmac.new(_KEY["value"], address.strip().lower().encode(), hashlib.sha256)
    return "h:" + digest.hexdigest()[:16]


_ADDRESS = re.compile(r"[^\s<>\"'(),;:]+@[^\s<>\"'(),;:]+")


def scrub_addresses(text: str) -> str:
    """``text`` (e.g. a remote server's error reply) with every address replaced by its
    keyed hash, so a reason can be logged without the address it names."""
    return _ADDRESS.sub(lambda m: mask(m.group(0)), text)


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def configure(fmt: str = "auto", level: str = "info", stream: Any = None) -> None:
    """Route structlog and stdlib logging to one handler on ``stream`` (stderr)."""
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "console" if stream.isatty() else "json"
    renderer: Any = (
        structlog.dev.ConsoleRenderer() if fmt == "console" else structlog.processors.JSONRenderer()
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=_shared_processors(),
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
    for name in _QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
    structlog.configure(
        processors=[
            *_shared_processors(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
