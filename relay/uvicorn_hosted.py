"""uvicorn run as one task of the relay's own event loop, without its signal handlers.

The API and the ops HTTP server (``/metrics``, ``/healthz``) run beside the SMTP listener;
the host process owns SIGINT/SIGTERM and stops them through its own event, so uvicorn
must not install handlers that would take those signals away from it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import uvicorn


class HostedServer(uvicorn.Server):
    """A ``uvicorn.Server`` that leaves signals to the process hosting it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
