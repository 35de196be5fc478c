"""Structured logs (structlog): JSON for machines, console for a terminal.

Real addresses never reach a log line: ``mask()`` turns them into a keyed hash, stable
for one deployment (so ops can correlate lines) and useless to anyone without the key.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import sys
from typing import Any

import structlog

_KEY = {"value": b""}


def set_hash_key(key: bytes) -> None:
    _KEY["value"] = key


def mask(address: str) -> str:
    if not address:
        return ""
    digest = hmac.new(_KEY["value"], address.strip().lower().encode(), hashlib.sha256)
    return "h:" + digest.hexdigest()[:16]


def configure(fmt: str = "auto", level: str = "info") -> None:
    if fmt == "auto":
        fmt = "console" if sys.stderr.isatty() else "json"
    renderer: Any = (
        structlog.dev.ConsoleRenderer() if fmt == "console" else structlog.processors.JSONRenderer()
    )
    logging.basicConfig(stream=sys.stderr, level=level.upper(), format="%(message)s")
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd's own chatter
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
