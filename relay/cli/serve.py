"""``relay serve`` and ``relay worker``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from relay.cli import CliState, run_async
from relay.cli.startup import build, check_signing, guard_start
from relay.log import configure

if TYPE_CHECKING:
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
    from relay.service import Relay, run_forever

    settings = _settings(state, config)
    configure(settings.log.format, settings.log.level)
    processes = 0 if no_worker else settings.delivery.processes
    if not no_worker:
        check_signing(settings)
    relay = build(
        lambda: Relay(
            settings, worker=not no_worker and processes == 0, **_auth_parts(settings)
        ),
        settings,
    )
    guard_start(relay)
    if with_api:
        from relay.api.server import run_relay_and_api

        main = run_relay_and_api(relay)
    else:
        main = run_forever(relay)
    main = with_fresh_statistics(relay.engine, main)
    run_async(_with_worker_processes(main, processes, state.config))


async def with_fresh_statistics(engine: Any, main: Any) -> None:
    """``main`` while the planner's statistics are kept fresh (relay.db.statistics)."""
    from relay.db.statistics import fresh_statistics

    async with fresh_statistics(engine):
        await main


async def _with_worker_processes(main: Any, count: int, config: str | None) -> None:
    if count == 0:
        await main
        return
    from relay.supervisor import WorkerProcesses

    workers = WorkerProcesses(count, config)
    await workers.start()
    try:
        await main
    finally:
        await workers.stop()


@click.command()
@click.option(
    "--config", "-c", "config", type=click.Path(dir_okay=False), help="settings TOML file"
)
@click.pass_obj
def worker(state: CliState, config: str | None) -> None:
    """Run the delivery worker alone."""
    from relay.service import Relay, run_forever

    settings = _settings(state, config)
    configure(settings.log.format, settings.log.level)
    check_signing(settings)
    relay = build(lambda: Relay(settings, smtp=False, **_auth_parts(settings)), settings)
    guard_start(relay)
    run_async(with_fresh_statistics(relay.engine, run_forever(relay)))


def _auth_parts(settings: Settings) -> dict[str, Any]:
    from relay.wiring import auth_parts

    return auth_parts(settings)
