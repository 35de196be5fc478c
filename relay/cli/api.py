"""``relay api``: serve the provisioning and ops HTTP API."""

from __future__ import annotations

import click

from relay.cli import CliState, run_async


@click.group("api", invoke_without_command=True)
@click.pass_context
def api(ctx: click.Context) -> None:
    """The provisioning and ops HTTP API (``relay api serve``; bare ``relay api`` serves too)."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(serve)


@api.command("serve")
@click.option("--listen", default=None, help="host:port, overriding api.listen")
@click.option(
    "--with-relay", is_flag=True, help="also run the SMTP relay and delivery worker (one process)"
)
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
        api_section = settings.api.model_copy(update={"listen": listen})
        settings = settings.model_copy(update={"api": api_section})
    configure(settings.log.format, settings.log.level)
    if with_relay:
        from relay.api.server import run_relay_and_api
        from relay.service import Relay
        from relay.wiring import auth_parts

        run_async(run_relay_and_api(Relay(settings, **auth_parts(settings))))
        return

    async def main() -> None:
        engine = create_engine(settings.database.url, pool_size=settings.database.pool_size)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await upgrade(engine)
            await serve_api(settings, engine, stop)
        finally:
            await engine.dispose()

    run_async(main())


@api.command("openapi")
@click.pass_obj
def openapi(state: CliState) -> None:
    """Print the OpenAPI document (no database needed)."""
    import json

    from relay.api import HANDLERS
    from relay.api.openapi import document

    specs = [h.spec for h in HANDLERS]
    click.echo(json.dumps(document(specs, "0"), indent=2, ensure_ascii=False))
