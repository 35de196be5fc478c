"""The two settings a read-only command needs, read without pydantic.

``relay archive search`` and the other read-only commands need only ``database.url``
and ``archive.search_timeout``. Building the full pydantic settings (``relay.settings``)
costs about 0.2-0.3 s of CPU before the first query, most of a CLI call's time. This
reads the same sources the same way (``RELAY_SECTION__KEY`` environment variables,
case-insensitive, over the TOML file) for those two sections only, and gives up (None)
on anything it does not plainly understand (an unknown key, a value of another type, a
section given as JSON in the environment), so that the full loader runs and words the
error exactly as it always does. Other sections are not read, so a typo elsewhere in the
file is reported by the commands that use that section, not by a read-only one.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
URL_PREFIXES = ("sqlite+aiosqlite://", "postgresql+asyncpg://")
DEFAULT_URL = "sqlite+aiosqlite:///var/relay.sqlite3"
DEFAULT_SEARCH_TIMEOUT = 10.0
# The keys relay.settings knows in the two sections read here (a test keeps them equal).
KNOWN = {
    "database": frozenset({"url", "pool_size", "group_commit_max"}),
    "archive": frozenset({"refused_keep", "search_timeout"}),
}


def parse_duration(value: Any) -> timedelta:
    """Accept ``30s``, ``5m``, ``1h``, ``5d`` or a number of seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])
    raise ValueError(f"not a duration: {value!r} (use e.g. 30s, 5m, 1h, 5d)")


@dataclass(frozen=True)
class DatabaseView:
    url: str
    search_timeout: float  # seconds; 0 = no limit


def _sections(path: str | None) -> dict[str, dict[str, Any]] | None:
    found: dict[str, dict[str, Any]] = {"database": {}, "archive": {}}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        for name in found:
            section = data.get(name, {})
            if not isinstance(section, dict):
                return None
            found[name].update(section)
    for key, value in os.environ.items():
        upper = key.upper()
        if upper in ("RELAY_DATABASE", "RELAY_ARCHIVE"):
            return None  # a section as JSON: the full loader's business
        for name in found:
            prefix = f"RELAY_{name.upper()}__"
            if upper.startswith(prefix):
                found[name][upper[len(prefix) :].lower()] = value
    return found


def read(path: str | None) -> DatabaseView | None:
    """``database.url`` and ``archive.search_timeout`` as ``relay.settings`` would load
    them, or None when the full loader must decide (it also names the error)."""
    found = _sections(path)
    if found is None or any(set(found[n]) - KNOWN[n] for n in found):
        return None
    url = found["database"].get("url", DEFAULT_URL)
    if not isinstance(url, str) or not url.startswith(URL_PREFIXES):
        return None
    try:
        timeout = parse_duration(found["archive"].get("search_timeout", DEFAULT_SEARCH_TIMEOUT))
    except ValueError:
        return None
    seconds = timeout.total_seconds()
    return None if seconds < 0 else DatabaseView(url, seconds)
