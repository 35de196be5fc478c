"""The catch-all mailbox behind `relay sink serve`: every message on a port into a Maildir.

aiosmtpd's own ``Mailbox`` handler and threaded ``Controller`` do the work (the sink is a
development tool, not the relay's edge), kept here so that only relay.smtp imports
aiosmtpd. The Maildir messages carry aiosmtpd's ``X-MailFrom``/``X-RcptTo`` headers,
which `relay sink list` shows.
"""

from __future__ import annotations

from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox


class Sink:
    """Accepts every message on ``host:port`` into ``maildir``, on a thread of its own."""

    def __init__(self, host: str, port: int, maildir: Path) -> None:
        self._controller = Controller(Mailbox(maildir), hostname=host, port=port)

    def start(self) -> None:
        """Listen (raises OSError or RuntimeError when the port cannot be had)."""
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()
