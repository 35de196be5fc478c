"""``relay api``: serve the provisioning and ops HTTP API."""

from __future__ import annotations

import click

from relay.cli import CliState, StartupError, run_async
from relay.cli.serve import with_fresh_statistics
from relay.cli.startup import build, check_signing, explain, guard_start

_LISTEN = click.option("--listen", default=None, help="host:port, overriding api.listen")
_WITH_RELAY = click.option(
    "--with-relay", is_flag=True, help="also run the SMTP relay and delivery worker (one process)"
)


@click.group("api", invoke_without_command=True)
@_LISTEN
@_WITH_RELAY
@click.pass_context
def api(ctx: click.Context, listen: str | None, with_relay: bool) -> None:
    """The provisioning and ops HTTP API: `relay api [--listen H:P]` serves it (the same
    as `relay api serve`)."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(serve, listen=listen, with_relay=with_relay)
    elif listen or with_relay:
        raise click.UsageError("put --listen/--with-relay after the sub-command name")


@api.command("serve")
@_LISTEN
@_WITH_RELAY
@click.pass_obj
def serve(state: CliState, listen: str | None, with_relay: bool) -> None:
    """Serve until SIGINT/SIGTERM; migrates the schema first."""
    import asyncio
    import signal

    from relay.api.server import serve_api
    from relay.db import create_engine
    from relay.db.migrate import upgrade
    from relay.log import configure

    settings = state.settings
    if listen:
        from relay.settings import parse_hostport, require_port

        try:
            parse_hostport(require_port(listen), 8025)
        except ValueError as err:
            raise click.BadParameter(str(err), param_hint="--listen") from None
        api_section = settings.api.model_copy(update={"listen": listen})
        settings = settings.model_copy(update={"api": api_section})
    configure(settings.log.format, settings.log.level)
    if with_relay:
        from relay.api.server import run_relay_and_api
        from relay.service import Relay
        from relay.wiring import auth_parts

        check_signing(settings)
        relay = build(lambda: Relay(settings, **auth_parts(settings)), settings)
        guard_start(relay)
        run_async(with_fresh_statistics(relay.engine, run_relay_and_api(relay)))
        return

    async def main() -> None:
        engine = build(
            lambda: create_engine(settings.database.url, pool_size=settings.database.pool_size),
            settings,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            try:
                await upgrade(engine)
            except Exception as err:
                raise StartupError(explain(err, settings) or str(err)) from None
            from relay.db.statistics import fresh_statistics

            async with fresh_statistics(engine):
                await serve_api(settings, engine, stop)
        finally:
            await engine.dispose()

    run_async(main())


@api.command("openapi")
@click.pass_obj
def openapi(state: CliState) -> None:
    """Print the OpenAPI document (no database needed)."""
    import json

    from relay.api import build_api

    click.echo(json.dumps(build_api().openapi(), indent=2, ensure_ascii=False))
