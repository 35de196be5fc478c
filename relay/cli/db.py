"""``relay db upgrade|current``."""

from __future__ import annotations

import click

from relay.cli import CliState, run_async


@click.group()
def db() -> None:
    """Schema migrations (Alembic)."""


@db.command()
@click.pass_obj
def upgrade(state: CliState) -> None:
    """Create or migrate the schema to the newest revision."""
    from relay.db import create_engine
    from relay.db.migrate import current_revision
    from relay.db.migrate import upgrade as do_upgrade

    async def run() -> str | None:
        engine = create_engine(state.settings.database.url)
        try:
            await do_upgrade(engine)
            return await current_revision(engine)
        finally:
            await engine.dispose()

    click.echo(f"database at revision {run_async(run())}")


@db.command()
@click.pass_obj
def current(state: CliState) -> None:
    """Print the schema revision of the database."""
    from relay.db import create_engine
    from relay.db.migrate import current_revision, head_revision

    async def run() -> str | None:
        engine = create_engine(state.settings.database.url)
        try:
            return await current_revision(engine)
        finally:
            await engine.dispose()

    click.echo(f"current: {run_async(run())}  head: {head_revision()}")
