"""``relay serve`` and ``relay worker`` (and `relay api serve`): relay.app's process with
the roles the command names."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from relay.cli import CliState, run_async
from relay.cli.startup import build, check_signing, guard_start
from relay.log import configure

if TYPE_CHECKING:
    from relay.app import Roles
    from relay.settings import Settings


def _settings(state: CliState, config: str | None) -> Settings:
    if config:
        state.config = config
    return state.settings


@click.command()
@click.option(
    "--config", "-c", "config", type=click.Path(dir_okay=False), help="settings TOML file"
)
@click.option("--no-worker", is_flag=True, help="accept mail only; run `relay worker` elsewhere")
@click.option("--api", "with_api", is_flag=True, help="also serve the HTTP API on api.listen")
@click.pass_obj
def serve(state: CliState, config: str | None, no_worker: bool, with_api: bool) -> None:
    """Run the SMTP relay (and, unless --no-worker, the delivery worker)."""
    from relay.app import Roles

    settings = _settings(state, config)
    configure(settings.log.format, settings.log.level)
    processes = 0 if no_worker else settings.delivery.processes
    if not no_worker:
        check_signing(settings)
    roles = Roles(
        smtp=True,
        worker=not no_worker and processes == 0,
        api=with_api,
        worker_processes=processes,
    )
    serve_roles(state, settings, roles)


def serve_roles(state: CliState, settings: Settings, roles: Roles) -> None:
    """Build the process for ``roles`` (relay.app) and run it until a signal, naming
    start-up failures in one line (relay.cli.startup)."""
    from relay.app import build as build_app
    from relay.app import run

    app = build(lambda: build_app(settings, roles, config=state.config), settings)
    guard_start(app)
    run_async(with_fresh_statistics(app.engine, run(app)))


async def with_fresh_statistics(engine: Any, main: Any) -> None:
    """``main`` while the planner's statistics are kept fresh (relay.db.statistics)."""
    from relay.db.statistics import fresh_statistics

    async with fresh_statistics(engine):
        await main


@click.command()
@click.option(
    "--config", "-c", "config", type=click.Path(dir_okay=False), help="settings TOML file"
)
@click.pass_obj
def worker(state: CliState, config: str | None) -> None:
    """Run the delivery worker alone."""
    from relay.app import Roles

    settings = _settings(state, config)
    configure(settings.log.format, settings.log.level)
    check_signing(settings)
    serve_roles(state, settings, Roles(smtp=False, worker=True))
