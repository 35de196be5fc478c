"""The ``relay`` command: schema, orders, parties, settings errors, the archive's
append-only triggers and ``relay archive verify`` on intact and tampered archives."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from relay.cli import main
from relay.db import create_engine
from tests.helpers import (
    BUYER,
    DOMAIN,
    ORDER,
    SELLER,
    message,
    relay_cli,
    running_relay,
    send,
    write_settings,
)
from tests.helpers import (
    create_order as create_order_in_db,
)
from tests.helpers import (
    test_settings as settings_for,
)

EXTRA_SENDER = "orders@shop.example"


def config_for(tmp_path: Path, db_url: str, **sections: dict[str, Any]) -> Path:
    base: dict[str, dict[str, Any]] = {
        "relay": {"domain": DOMAIN, "marketplace": "Marketplace"},
        "database": {"url": db_url},
        "auth": {"mode": "off"},
        "log": {"format": "console", "level": "warning"},
    }
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
    return write_settings(tmp_path / "relay.toml", **base)


@pytest.fixture
def cli(tmp_path: Path) -> Any:
    """``relay --config <SQLite settings> ARGS`` through click's CliRunner."""
    config = config_for(tmp_path, f"sqlite+aiosqlite:///{tmp_path}/relay.sqlite3")

    def run(*args: str) -> Result:
        return CliRunner().invoke(main, ["--config", str(config), *args])

    return run


def create_order(cli: Any, order_id: str = ORDER, **kw: str) -> Result:
    args = ["order", "create", order_id, "--buyer", kw.get("buyer", BUYER)]
    args += ["--seller", kw.get("seller", SELLER), "--buyer-name", "Alice", "--json"]
    return cli(*args)


def test_db_upgrade_creates_the_schema_on_a_fresh_file(cli, tmp_path: Path) -> None:
    result = cli("db", "upgrade")
    assert result.exit_code == 0, result.output
    assert "database at revision" in result.output
    with sqlite3.connect(tmp_path / "relay.sqlite3") as conn:
        names = conn.execute("SELECT type, name FROM sqlite_master").fetchall()
    tables = {name for kind, name in names if kind == "table"}
    triggers = {name for kind, name in names if kind == "trigger"}
    assert {"archive", "deliveries", "delivery_events", "orders", "aliases", "parties"} <= tables
    assert {"archive_no_update", "archive_no_delete"} <= triggers
    again = cli("db", "upgrade")  # idempotent
    assert again.exit_code == 0 and again.output == result.output


def test_order_create_prints_both_aliases_on_the_relay_domain(cli) -> None:
    result = create_order(cli)
    assert result.exit_code == 0, result.output
    view = json.loads(result.output)
    assert view["id"] == ORDER and view["status"] == "open"
    assert (view["buyer"], view["seller"]) == (BUYER, SELLER)
    for key in ("buyer_alias", "seller_alias"):
        local, _, domain = view[key].partition("@")
        assert domain == DOMAIN and len(local) >= 20
    assert view["buyer_alias"] != view["seller_alias"]
    assert BUYER.split("@")[0] not in view["buyer_alias"]


@pytest.mark.parametrize(
    ("order_id", "buyer", "named"),
    [
        ("113-482930-5520417", BUYER, "113-482930-5520417"),
        ("not-an-order", BUYER, "not-an-order"),
        (ORDER, "alice-at-buyer.example", "alice-at-buyer.example"),
        (ORDER, "alice@", "alice@"),
    ],
)
def test_order_create_refuses_bad_input_naming_it(cli, order_id, buyer, named) -> None:
    result = create_order(cli, order_id, buyer=buyer)
    assert result.exit_code != 0
    assert named in result.output, result.output
    assert "Traceback" not in result.output


def test_order_show_list_close_reopen(cli) -> None:
    created = json.loads(create_order(cli).output)
    other = create_order(cli, "113-0000000-0000002", buyer="bob@buyer.example")
    assert other.exit_code == 0, other.output

    shown = cli("order", "show", ORDER, "--json")
    assert shown.exit_code == 0 and json.loads(shown.output) == created
    text = cli("order", "show", ORDER)
    assert created["buyer_alias"] in text.output and "(open)" in text.output

    listed = json.loads(cli("order", "list", "--json").output)
    assert {v["id"] for v in listed} == {ORDER, "113-0000000-0000002"}
    mine = json.loads(cli("order", "list", "--party", "bob@buyer.example", "--json").output)
    assert [v["id"] for v in mine] == ["113-0000000-0000002"]

    closed = cli("order", "close", ORDER, "--json")
    assert closed.exit_code == 0 and json.loads(closed.output)["status"] == "closed"
    only_open = json.loads(cli("order", "list", "--status", "open", "--json").output)
    assert [v["id"] for v in only_open] == ["113-0000000-0000002"]
    reopened = cli("order", "reopen", ORDER, "--json")
    assert reopened.exit_code == 0 and json.loads(reopened.output)["status"] == "open"

    missing = cli("order", "show", "999-9999999-9999999")
    assert missing.exit_code != 0 and "999-9999999-9999999" in missing.output


@pytest.mark.parametrize(
    ("section", "values", "named"),
    [
        ("smtp", {"listen_port": 25}, "smtp.listen_port"),
        ("delivery", {"smarthosts": "x:25"}, "delivery.smarthosts"),
        ("nonsense", {"key": 1}, "nonsense"),
        ("smtp", {"listen": "127.0.0.1:notaport"}, "smtp.listen"),
        ("delivery", {"retry": ["soon"]}, "delivery.retry"),
    ],
)
def test_bad_settings_stop_with_the_key_named(tmp_path: Path, section, values, named) -> None:
    config = config_for(tmp_path, f"sqlite+aiosqlite:///{tmp_path}/r.sqlite3", **{section: values})
    for args in (["--config", str(config), "db", "upgrade"], ["serve", "--config", str(config)]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code != 0, result.output
        assert named in result.output, result.output
        assert "Traceback" not in result.output
    assert not (tmp_path / "r.sqlite3").exists()


@pytest.fixture
async def populated(db_url: str, sink: Any, tmp_path: Path) -> tuple[Path, str]:
    """A database holding an order, three delivered messages and their delivery events,
    and a settings file for it; returns (config, seller alias)."""

    settings = settings_for(db_url, delivery={"smarthost": f"127.0.0.1:{sink.port}"})
    async with running_relay(settings, policy=None) as relay:
        order = await create_order_in_db(relay, buyer_name="Alice")
        for n in range(3):
            data = message(BUYER, order.seller_alias, subject=f"question {n}").as_bytes()
            assert (await send(relay.port, BUYER, [order.seller_alias], data))[0] == 250
        await sink.wait_for(3)
        await relay.worker.drain(5)  # type: ignore[union-attr]
    return config_for(tmp_path, db_url), order.seller_alias


async def test_add_sender_lets_that_address_send(db_url: str, sink: Any, populated) -> None:
    config, _ = populated
    settings = settings_for(db_url, delivery={"smarthost": f"127.0.0.1:{sink.port}"})
    async with running_relay(settings, policy=None) as relay:
        code, out, _ = await relay_cli(config, "order", "show", ORDER, "--json")
        buyer_alias = json.loads(out)["buyer_alias"]
        reply = message(EXTRA_SENDER, buyer_alias, subject="Re: question").as_bytes()
        code, text = await send(relay.port, EXTRA_SENDER, [buyer_alias], reply)
        assert (code, text.split()[0]) == (550, "5.7.1"), text  # a stranger so far

        code, out, err = await relay_cli(config, "party", "add-sender", SELLER, EXTRA_SENDER)
        assert code == 0, err
        assert EXTRA_SENDER in out
        code, out, _ = await relay_cli(config, "party", "senders", SELLER)
        assert out.split() == [EXTRA_SENDER]

        code, text = await send(relay.port, EXTRA_SENDER, [buyer_alias], reply)
        assert code == 250, text
        got = (await sink.wait_for(4))[3]
        assert got.rcpt_tos == [BUYER]
        assert b"shop.example" not in got.data.lower()


async def test_archive_verify_passes_then_names_the_tampered_record(populated, db_url) -> None:
    config, _ = populated
    code, out, err = await relay_cli(config, "archive", "verify")
    assert code == 0, out + err
    assert "3 records" in out and "intact" in out

    code, out, _ = await relay_cli(config, "archive", "search", "--order", ORDER, "--json")
    second = sorted(r["id"] for r in json.loads(out))[1]
    engine = create_engine(db_url)
    try:
        async with engine.begin() as conn:
            if conn.dialect.name == "sqlite":
                await conn.exec_driver_sql("DROP TRIGGER archive_no_update")
            else:
                await conn.exec_driver_sql("ALTER TABLE archive DISABLE TRIGGER USER")
            await conn.execute(
                sa.text("UPDATE archive SET subject = 'edited' WHERE id = :id"), {"id": second}
            )
    finally:
        await engine.dispose()
    code, out, err = await relay_cli(config, "archive", "verify")
    assert code == 1, out + err
    assert f"record {second}" in err and "does not match" in err
    assert "1 records verified before it" in err


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE archive SET subject = 'edited'",
        "DELETE FROM archive",
        "UPDATE delivery_events SET detail = 'edited'",
        "DELETE FROM delivery_events",
    ],
)
async def test_archive_tables_refuse_update_and_delete(populated, db_url, statement) -> None:
    engine = create_engine(db_url)
    try:
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            async with engine.begin() as conn:
                await conn.exec_driver_sql(statement)
        if engine.dialect.name == "postgresql":
            table = statement.split()[1] if statement.startswith("UPDATE") else statement.split()[2]
            with pytest.raises(sa.exc.DBAPIError, match="append-only"):
                async with engine.begin() as conn:
                    await conn.exec_driver_sql(f"TRUNCATE {table} CASCADE")
        async with engine.connect() as conn:
            archived = (await conn.exec_driver_sql("SELECT count(*) FROM archive")).scalar()
            events = (await conn.exec_driver_sql("SELECT count(*) FROM delivery_events")).scalar()
            edited = (
                await conn.exec_driver_sql("SELECT count(*) FROM archive WHERE subject = 'edited'")
            ).scalar()
    finally:
        await engine.dispose()
    assert (archived, events, edited) == (3, 3, 0)


# --- start-up failures: one line naming the setting, exit 2, no traceback ---------------


def _run_relay(config: Path, *args: str, cwd: Path | None = None) -> tuple[int, str]:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "relay", "--config", str(config), *args],
        capture_output=True, text=True, timeout=60, cwd=cwd,
    )  # fmt: skip
    return proc.returncode, proc.stderr


def _one_line(stderr: str, *needles: str) -> None:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert "Traceback" not in stderr, stderr
    errors = [ln for ln in lines if ln.startswith("Error:")]
    assert len(errors) == 1, stderr
    for needle in needles:
        assert needle in errors[0], stderr


@pytest.fixture
def busy_port() -> Any:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def test_smtp_port_in_use_is_one_line_naming_smtp_listen(tmp_path: Path, busy_port) -> None:
    config = config_for(
        tmp_path, f"sqlite+aiosqlite:///{tmp_path}/r.sqlite3",
        smtp={"listen": f"127.0.0.1:{busy_port}"},
    )  # fmt: skip
    code, err = _run_relay(config, "serve")
    assert code == 2
    _one_line(err, "smtp.listen", str(busy_port), "in use")


def test_metrics_port_in_use_is_one_line_naming_metrics_listen(tmp_path: Path, busy_port):
    config = config_for(
        tmp_path, f"sqlite+aiosqlite:///{tmp_path}/r.sqlite3",
        smtp={"listen": "127.0.0.1:0"}, metrics={"listen": f"127.0.0.1:{busy_port}"},
    )  # fmt: skip
    code, err = _run_relay(config, "serve")
    assert code == 2
    _one_line(err, "metrics.listen", "in use")


def test_api_port_in_use_is_one_line_naming_api_listen(tmp_path: Path, busy_port) -> None:
    config = config_for(
        tmp_path, f"sqlite+aiosqlite:///{tmp_path}/r.sqlite3",
        api={"ops_tokens": ["o" * 20]},
    )  # fmt: skip
    code, err = _run_relay(config, "api", "--listen", f"127.0.0.1:{busy_port}")
    assert code == 2
    _one_line(err, "api.listen", "in use")


@pytest.mark.parametrize("command", [["serve"], ["db", "upgrade"], ["order", "list"]])
def test_postgresql_down_is_one_line_naming_database_url(tmp_path: Path, command) -> None:
    import socket

    with socket.socket() as s:  # a port where nothing listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = config_for(
        tmp_path, f"postgresql+asyncpg://relay:secret@127.0.0.1:{port}/relay",
        smtp={"listen": "127.0.0.1:0"},
    )  # fmt: skip
    code, err = _run_relay(config, *command)
    assert code == 2
    _one_line(err, "database.url")
    assert "secret" not in err


def test_unusable_sqlite_path_is_one_line_naming_database_url(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    config = config_for(
        tmp_path, f"sqlite+aiosqlite:///{blocker}/sub/r.sqlite3", smtp={"listen": "127.0.0.1:0"}
    )
    for command in (["serve"], ["db", "upgrade"]):
        code, err = _run_relay(config, *command)
        assert code == 2, err
        _one_line(err, "database.url")


@pytest.mark.parametrize(
    "command",
    [["order", "list"], ["order", "show", ORDER], ["archive", "search"], ["archive", "verify"],
     ["archive", "show", "1"], ["report", "response-times"], ["db", "current"],
     ["party", "senders", SELLER]],
)  # fmt: skip
def test_read_only_commands_refuse_a_missing_database(tmp_path: Path, command) -> None:
    """No folder, no file, no schema is created; the message names database.url."""
    db = tmp_path / "typo" / "relay.sqlite3"
    config = config_for(tmp_path, f"sqlite+aiosqlite:///{db}")
    code, err = _run_relay(config, *command, cwd=tmp_path)
    assert code == 2
    _one_line(err, "database.url", "no database")
    assert not (tmp_path / "typo").exists()
    assert not (tmp_path / "var").exists()


def test_read_only_commands_refuse_a_database_without_schema(tmp_path: Path) -> None:
    db = tmp_path / "empty.sqlite3"
    sqlite3.connect(db).close()
    config = config_for(tmp_path, f"sqlite+aiosqlite:///{db}")
    code, err = _run_relay(config, "order", "list")
    assert code == 2
    _one_line(err, "database.url", "no relay schema")


@pytest.mark.parametrize("section", ["smtp", "metrics", "api"])
def test_listen_without_a_port_is_an_error_naming_the_key(tmp_path: Path, section) -> None:
    config = config_for(tmp_path, f"sqlite+aiosqlite:///{tmp_path}/r.sqlite3",
                        **{section: {"listen": "localhost"}})  # fmt: skip
    code, err = _run_relay(config, "db", "upgrade")
    assert code == 2
    _one_line(err, f"{section}.listen")


def test_health_without_metrics_listen_exits_2(tmp_path: Path) -> None:
    config = config_for(tmp_path, f"sqlite+aiosqlite:///{tmp_path}/r.sqlite3")
    code, err = _run_relay(config, "health")
    assert code == 2
    _one_line(err, "metrics.listen")


def test_template_send_prints_no_migration_chatter(tmp_path: Path) -> None:
    config = config_for(tmp_path, f"sqlite+aiosqlite:///{tmp_path}/r.sqlite3",
                        log={"level": "info"})  # fmt: skip
    code, err = _run_relay(config, "order", "create", ORDER, "--buyer", BUYER, "--seller", SELLER)
    assert code == 0, err
    code, err = _run_relay(
        config, "template", "send", ORDER, "shipping_delay", "--var", "new_date=2026-12-24"
    )
    assert code == 0, err
    assert "alembic" not in err.lower() and "Context impl" not in err, err


def test_every_option_has_help_and_no_rst_markup() -> None:
    import click

    def walk(cmd: click.Command, path: list[str]) -> Any:
        yield path, cmd
        if isinstance(cmd, click.Group):
            ctx = click.Context(cmd)
            for name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, name)
                if sub is not None:
                    yield from walk(sub, [*path, name])

    seen = 0
    for path, cmd in walk(main, ["relay"]):
        seen += 1
        text = cmd.get_help(click.Context(cmd, info_name=" ".join(path)))
        assert "``" not in text, f"{' '.join(path)} --help shows ``"
        for p in cmd.params:
            if isinstance(p, click.Option) and not p.hidden:
                assert p.help, f"{' '.join(path)} {p.opts[0]} has no help text"
    assert seen > 30


def test_archive_show_of_an_id_beyond_bigint_is_a_usage_error(cli) -> None:
    cli("db", "upgrade")
    result = cli("archive", "show", str(2**63))
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "RECORD_ID" in result.output


def test_help_listing_matches_each_command_and_imports_none() -> None:
    """`relay --help` lists commands from a table (start-up cost): it must say what each
    command's own docstring says, and list them without importing them."""
    import subprocess
    import sys

    import click

    from relay.cli import _SHORT_HELP

    ctx = click.Context(main)
    for name, text in _SHORT_HELP.items():
        cmd = main.get_command(ctx, name)
        assert cmd is not None and cmd.get_short_help_str(limit=300) == text, name
    probe = (
        "import sys; from click.testing import CliRunner; from relay.cli import main; "
        "CliRunner().invoke(main, ['--help']); "
        "print(sorted(m for m in sys.modules if m.startswith(('sqlalchemy', 'pydantic', "
        "'aiosmtpd', 'relay.cli.'))))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    loaded = set(eval(out))
    listed = {f"relay.cli.{name}" for name in ("serve", "db", "order", "archive", "api", "sink")}
    assert not loaded & listed, loaded
    if not set(main.list_commands(ctx)) - set(_SHORT_HELP):  # nothing loads its own help
        assert not any(m.startswith(("sqlalchemy", "aiosmtpd")) for m in loaded), loaded
