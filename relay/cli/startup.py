"""Start-up failures as one line naming the cause and the setting (exit status 2).

A port in use, a database that is down or a SQLite path that cannot be created are the
operator's to fix; a 50-line traceback only hides which setting to look at. Errors that
happen once the relay runs are not touched here: those are bugs and keep their traceback.
"""

from __future__ import annotations

import errno
import re
from typing import Any

from relay.cli import StartupError, database_failure, database_label
from relay.settings import Settings, SettingsError, parse_hostport

_BIND_ERRNOS = {errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL, errno.EPERM}


def _listen_keys(settings: Settings) -> list[tuple[str, str]]:
    keys = [("smtp.listen", settings.smtp.listen), ("metrics.listen", settings.metrics.listen)]
    keys.append(("api.listen", settings.api.listen))
    return [(k, v) for k, v in keys if v]


def _bind_failure(err: OSError, settings: Settings) -> str | None:
    """Which listen setting a failed bind belongs to (asyncio names the address)."""
    if err.errno not in _BIND_ERRNOS:
        return None
    text = str(err)
    reason = (err.strerror or text).lower()
    for key, value in _listen_keys(settings):
        try:
            _, port = parse_hostport(value, 0)
        except ValueError:
            continue
        if re.search(rf"[(, ]{port}\)", text) or f":{port}" in text:
            return f"setting '{key}': cannot listen on {value}: {reason}"
    return f"cannot listen: {reason} ({text})"


def explain(err: BaseException, settings: Settings) -> str | None:
    """One line for a start-up failure we know how to name, else None."""
    from sqlalchemy.exc import SQLAlchemyError

    if isinstance(err, SettingsError | StartupError):
        return str(err)
    label = database_label(settings.database.url)
    if isinstance(err, SQLAlchemyError):
        return database_failure(label, err)
    if isinstance(err, OSError):
        bind = _bind_failure(err, settings)
        if bind is not None:
            return bind
        # Connecting to PostgreSQL: refused, unreachable, unknown host, timed out.
        return database_failure(label, err)
    if type(err).__module__.startswith("asyncpg"):
        return database_failure(label, err)
    if isinstance(err, TimeoutError):
        return database_failure(label, err)
    return None


def check_signing(settings: Settings) -> None:
    """A relay that delivers under ``auth.mode = "enforce"`` signs what it sends: unsigned
    mail from the relay domain fails DMARC at the receivers while `relay dns records`
    publishes a DKIM key. Delivering unsigned must be said: ``dkim.enabled = false``."""
    if settings.auth.mode != "enforce" or settings.dkim.enabled is False:
        return
    if settings.dkim.key_file is None:
        raise StartupError(
            "setting 'dkim.key_file': not set, so mail would leave unsigned under "
            'auth.mode = "enforce" (run `relay dkim keygen`, or set dkim.enabled = false)'
        )


def guard_start(relay: Any) -> None:
    """Make ``relay.start()`` raise StartupError (one line) for failures we can name."""
    start = relay.start

    async def start_explained() -> None:
        try:
            await start()
        except Exception as err:
            line = explain(err, relay.settings)
            if line is None:
                raise
            raise StartupError(line) from None

    relay.start = start_explained


def build(factory: Any, settings: Settings) -> Any:
    """Construct a relay (its engine may create the SQLite folder), naming failures."""
    try:
        return factory()
    except Exception as err:
        line = explain(err, settings)
        if line is None:
            raise
        raise StartupError(line) from None
