"""Alembic, driven from code: works from a source checkout and from an installed wheel.

The wheel carries ``migrations/`` as ``relay/_migrations``; a checkout has it at the top.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

import relay


def migrations_dir() -> Path:
    package = Path(relay.__file__).resolve().parent
    for candidate in (package / "_migrations", package.parent / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise FileNotFoundError("migrations directory not found (broken installation)")


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    return cfg


def _upgrade(sync_conn: Any, cfg: Config, revision: str) -> None:
    cfg.attributes["connection"] = sync_conn
    command.upgrade(cfg, revision)


def _current(sync_conn: Any) -> str | None:
    return MigrationContext.configure(sync_conn).get_current_revision()


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    cfg = alembic_config()
    async with engine.connect() as conn:
        conn = await conn.execution_options(immediate=True)
        async with conn.begin():
            await conn.run_sync(_upgrade, cfg, revision)


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(_current)


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()
