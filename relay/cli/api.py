"""``relay api``: serve the provisioning and ops HTTP API."""

from __future__ import annotations

import click

from relay.cli import CliState
from relay.cli.startup import check_signing

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
    from relay.app import Roles
    from relay.cli.serve import serve_roles
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
        check_signing(settings)
    # --with-relay: the relay and its worker in this process (delivery.processes aside).
    serve_roles(state, settings, Roles(smtp=with_relay, worker=with_relay, api=True))


@api.command("openapi")
@click.pass_obj
def openapi(state: CliState) -> None:
    """Print the OpenAPI document (no database needed)."""
    import json

    from relay.api import build_api

    click.echo(json.dumps(build_api().openapi(), indent=2, ensure_ascii=False))
