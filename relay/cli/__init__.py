"""The ``relay`` command: noun then verb (``relay order create``, ``relay archive verify``).

Sub-command groups load lazily so that ``relay policy check`` does not import the SMTP
stack and ``relay serve`` does not import the policy CLI.
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

import click

from relay.core.errors import CallerError, ConfigError, RelayError, TemporaryError
from relay.core.errors import StartupError as StartupError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from relay.settings import Settings

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
    "sink": "relay.cli.sink:sink",
    "limits": "relay.cli.limits:limits",
    "hold": "relay.cli.hold:hold",
}


# One line per command for `relay --help`, so listing them imports none of them (each
# module pulls in pydantic, SQLAlchemy or the SMTP stack). A command missing here is
# loaded for its own docstring instead.
_SHORT_HELP: dict[str, str] = {
    "serve": "Run the SMTP relay (and, unless --no-worker, the delivery worker).",
    "worker": "Run the delivery worker alone.",
    "db": "Schema migrations (Alembic).",
    "order": "Orders and their two aliases.",
    "party": "Buyers and sellers: authorised sender addresses.",
    "archive": "The permanent message archive.",
    "policy": "Content policy: check a message, evaluate labelled cases, show the rules.",
    "dkim": "The relay's DKIM signing key.",
    "dns": "DNS records for the relay domain.",
    "health": "Exit 0 when the relay is ready (1 when not, 2 when it cannot be asked).",
    "api": "The provisioning and ops HTTP API: `relay api [--listen H:P]` serves it (the "
    "same as `relay api serve`).",
    "report": "Reports computed from the archive.",
    "template": "Approved seller->buyer message templates (policies/templates/).",
    "sink": "A local catch-all mailbox (Maildir) to watch what the relay delivers.",
}


class _CallerFailure(click.ClickException):
    exit_code = 1


class _ConfigFailure(click.ClickException):
    exit_code = 2


class _TemporaryFailure(click.ClickException):
    exit_code = 75  # EX_TEMPFAIL (sysexits.h): try again later


# The exit status for each category of relay.core.errors, by type (never by its words):
# the caller's mistake 1 (click's own), a setting or start-up problem 2, a temporary
# failure EX_TEMPFAIL. An error of ours in no category is a bug and keeps its traceback.
EXIT_STATUS: tuple[tuple[type[RelayError], type[click.ClickException]], ...] = (
    (ConfigError, _ConfigFailure),
    (CallerError, _CallerFailure),
    (TemporaryError, _TemporaryFailure),
)


def as_click(err: RelayError) -> click.ClickException | None:
    """``err`` as click shows it (``Error: <text>`` on stderr, its category's exit
    status); None for an error of no category."""
    for cls, failure in EXIT_STATUS:
        if isinstance(err, cls):
            return failure(str(err))
    return None


class _LazyGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        """Every command runs under here: our errors leave with their category's status."""
        try:
            return super().invoke(ctx)
        except RelayError as err:
            failure = as_click(err)
            if failure is None:
                raise
            raise failure from None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            text = _SHORT_HELP.get(name)
            if text is None:
                cmd = self.get_command(ctx, name)
                if cmd is None or cmd.hidden:
                    continue
                text = cmd.get_short_help_str(formatter.width)
            rows.append((name, text))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(_COMMANDS))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in _COMMANDS:
            module, _, attr = _COMMANDS[name].partition(":")
            try:
                command: click.Command = getattr(importlib.import_module(module), attr)
                return command
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
            from relay.settings import SettingsError, load_settings

            try:
                self._settings = load_settings(self.config)
            except SettingsError as err:
                raise StartupError(str(err)) from None
        return self._settings

    def database(self) -> tuple[str, float]:
        """``database.url`` and ``archive.search_timeout`` (seconds), for read-only
        commands: read without pydantic when the file is plain (relay.settings_lite,
        ~0.2 s less start-up), else from the full settings, which then name the error."""
        if self._settings is None:
            from relay import settings_lite

            view = settings_lite.read(self.config)
            if view is not None:
                return view.url, view.search_timeout
        db, archive = self.settings.database, self.settings.archive
        return db.url, archive.search_timeout.total_seconds()


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
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as err:
        # Only a command that loaded the settings can have a SettingsError to show; the
        # others (relay.settings_lite) must not pay pydantic's import to check.
        loaded = sys.modules.get("relay.settings")
        if loaded is not None and isinstance(err, loaded.SettingsError):
            raise StartupError(str(err)) from None
        raise


def sqlite_path(url: str) -> str | None:
    """The file of a SQLite URL (None for other engines and in-memory databases)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    return None if database in ("", ":memory:") else database


def prepare_sqlite(url: str, *, readonly: bool) -> None:
    """A reader needs the SQLite file to exist; a writer may create it and its folder."""
    from pathlib import Path

    path = sqlite_path(url)
    if path is None:
        return
    if readonly:
        if not Path(path).expanduser().is_file():
            raise StartupError(
                f"setting 'database.url': no database at {path} "
                "(check the path; `relay db upgrade` creates one)"
            )
        return
    parent = Path(path).expanduser().resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise StartupError(
            f"setting 'database.url': cannot create {parent}: {err.strerror}"
        ) from None


def database_label(url: str) -> str:
    """The database URL without its password, for messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(unparsable URL)"


async def with_engine(
    state: CliState, fn: Any, *, migrate: bool = True, readonly: bool = False
) -> Any:
    """Open the configured database and run ``fn``.

    Writers create or migrate the schema first (unless ``migrate`` is false). A
    ``readonly`` command never creates anything: a database that does not exist, or has
    no relay schema, stops it with one line naming ``database.url`` (exit 2), so a typo
    in a path does not silently answer "no orders" from a fresh empty file.
    """
    import logging

    # Migration chatter ("Context impl SQLiteImpl", "Running upgrade ...") is for
    # `relay db upgrade` and the serving processes, not before a command's own answer.
    logging.getLogger("alembic").setLevel(logging.WARNING)

    from relay.db import create_engine

    url = state.database()[0] if readonly else state.settings.database.url
    label = database_label(url)
    prepare_sqlite(url, readonly=readonly)
    engine = create_engine(url, pool_size=2, lite=readonly)
    try:
        try:
            if readonly:
                if await schema_revision(engine) is None:
                    raise StartupError(
                        f"setting 'database.url': {label} has no relay schema "
                        "(`relay db upgrade` creates it)"
                    )
            elif migrate:
                from relay.db.migrate import upgrade

                await upgrade(engine)
        except StartupError:
            raise
        except Exception as err:
            raise StartupError(database_failure(label, err)) from None
        return await fn(engine)
    finally:
        await engine.dispose()


async def schema_revision(engine: AsyncEngine) -> str | None:
    """The schema's Alembic revision, read from ``alembic_version`` without importing
    Alembic (0.3-0.9 s of start-up on a loaded machine, for a read-only command)."""
    import sqlalchemy as sa

    def read(conn: Any) -> str | None:
        if not sa.inspect(conn).has_table("alembic_version"):
            return None
        value = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
        return None if value is None else str(value)

    async with engine.connect() as conn:
        return await conn.run_sync(read)


def database_failure(label: str, err: BaseException) -> str:
    """One line for a database that cannot be opened (down, refused, bad path)."""
    cause = getattr(err, "orig", None) or err
    reason = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
    return f"setting 'database.url': cannot open {label}: {reason}"


def echo_json(data: Any) -> None:
    import json

    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))
