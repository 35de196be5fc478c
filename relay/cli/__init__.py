"""The ``relay`` command: noun then verb (``relay order create``, ``relay archive verify``).

Sub-command groups load lazily so that ``relay policy check`` does not import the SMTP
stack and ``relay serve`` does not import the policy CLI.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from relay.settings import Settings, SettingsError, load_settings

_COMMANDS: dict[str, str] = {
    "serve": "relay.cli.serve:serve",
    "worker": "relay.cli.serve:worker",
    "db": "relay.cli.db:db",
    "order": "relay.cli.order:order",
    "party": "relay.cli.order:party",
    "archive": "relay.cli.archive:archive_group",
    "policy": "relay.cli.policy:policy",
    "dkim": "relay.cli.dkim:dkim",
    "dns": "relay.cli.dns:dns",
    "health": "relay.cli.health:health",
    "api": "relay.cli.api:api",
    "report": "relay.cli.report:report",
    "template": "relay.cli.template:template",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(_COMMANDS))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in _COMMANDS:
            module, _, attr = _COMMANDS[name].partition(":")
            try:
                return getattr(importlib.import_module(module), attr)
            except ModuleNotFoundError as err:
                if err.name != module:
                    raise
                return None
        return super().get_command(ctx, name)


class CliState:
    """Settings are loaded on first use so that commands needing none start fast."""

    def __init__(self, config: str | None) -> None:
        self.config = config
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            try:
                self._settings = load_settings(self.config)
            except SettingsError as err:
                raise click.ClickException(str(err)) from None
        return self._settings


@click.group(cls=_LazyGroup)
@click.option(
    "--config",
    "-c",
    envvar="RELAY_CONFIG",
    type=click.Path(dir_okay=False),
    help="settings TOML file (env RELAY_CONFIG)",
)
@click.pass_context
def main(ctx: click.Context, config: str | None) -> None:
    """Anonymising SMTP relay for marketplace buyer-seller messaging."""
    ctx.obj = CliState(config)


def run_async(coro: Any) -> Any:
    """Run a coroutine for a CLI command, turning our own errors into clean messages."""
    import asyncio

    try:
        return asyncio.run(coro)
    except SettingsError as err:
        raise click.ClickException(str(err)) from None
    except KeyboardInterrupt:
        sys.exit(130)


async def with_engine(state: CliState, fn: Any, *, migrate: bool = True) -> Any:
    """Open the configured database (creating or migrating its schema unless ``migrate``
    is false) and run ``fn``."""
    from relay.db import create_engine
    from relay.db.migrate import upgrade

    engine = create_engine(state.settings.database.url)
    try:
        if migrate:
            await upgrade(engine)
        return await fn(engine)
    finally:
        await engine.dispose()


def echo_json(data: Any) -> None:
    import json

    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))
