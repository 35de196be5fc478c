"""``relay db upgrade|current``."""

from __future__ import annotations

import click

from relay.cli import CliState, run_async, with_engine


@click.group()
def db() -> None:
    """Schema migrations (Alembic)."""


@db.command()
@click.pass_obj
def upgrade(state: CliState) -> None:
    """Create or migrate the schema to the newest revision."""
    from relay.db.migrate import current_revision

    click.echo(f"database at revision {run_async(with_engine(state, current_revision))}")


@db.command()
@click.pass_obj
def current(state: CliState) -> None:
    """Print the schema revision of the database (without migrating it)."""
    from relay.db.migrate import current_revision, head_revision

    revision = run_async(with_engine(state, current_revision, readonly=True))
    click.echo(f"current: {revision}  head: {head_revision()}")
