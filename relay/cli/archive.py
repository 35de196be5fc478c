"""``relay archive search|show|verify``: what ops ask of the archive."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from relay.cli import CliState, echo_json, run_async, with_engine
from relay.core.errors import QueryError, StatementTimeout

if TYPE_CHECKING:  # the store imports SQLAlchemy: each command loads it when it runs
    from sqlalchemy.ext.asyncio import AsyncEngine

    from relay.store import archive as store_types


@click.group("archive")
def archive_group() -> None:
    """The permanent message archive."""


def _utc(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value and value.tzinfo is None else value


@archive_group.command("search")
@click.option("--text", default=None, help='full text: words, "phrases", prefix*')
@click.option("--order-id", "--order", "order_id", default=None, help="one order's records")
@click.option("--seller", default=None, help="every record of this seller's orders")
@click.option("--buyer", default=None, help="every record of this buyer's orders")
@click.option("--party", default=None, help="a buyer's or seller's real address on the record")
@click.option("--alias", default=None, help="the alias a record was addressed to")
@click.option("--since", type=click.DateTime(), default=None, help="UTC")
@click.option("--until", type=click.DateTime(), default=None, help="UTC, exclusive")
@click.option(
    "--verdict",
    type=click.Choice(["deliver", "redact", "reject", "refused", "tempfail", "absorbed"]),
    help="the relay's decision on the record",
)
@click.option(
    "--direction",
    type=click.Choice(["buyer-to-seller", "seller-to-buyer", "notice"]),
    help="who wrote to whom",
)
@click.option(
    "--finding-kind", "--finding", "finding_kind", default=None,
    help="a finding kind, e.g. phone_number",
)
@click.option(
    "--limit", default=100, show_default=True, type=click.IntRange(1, 10000),
    help="at most this many records",
)
@click.option("--before-id", type=int, default=None, help="page: records older than this id")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@click.pass_obj
def search(state: CliState, /, as_json: bool, **options: Any) -> None:
    """Find archived messages, newest first."""
    from relay.cli import quick_search

    options["since"], options["until"] = _utc(options["since"]), _utc(options["until"])
    url, limit = state.database()
    try:
        # The store's statements on the bare driver (no SQLAlchemy to import: most of a
        # call's time); None when the store's own path must answer (relay.cli.quick_search).
        rows = quick_search.search(url, options, limit)
        if rows is None:
            from relay.store import archive as store

            f = store.SearchFilter(**options)
            rows = run_async(
                with_engine(state, lambda e: store.search(e, f, timeout=limit), readonly=True)
            )
    except QueryError as err:
        raise click.BadParameter(str(err), param_hint="--text") from None
    except StatementTimeout as err:
        raise click.ClickException(
            f"the search ran longer than archive.search_timeout ({err.seconds:g} s) and "
            "was cancelled; narrow it (--order, --seller, --since) or raise the setting"
        ) from None
    if as_json:
        echo_json(rows)
        return
    for r in rows:
        status = ",".join(d["status"] for d in r["deliveries"]) or "-"
        click.echo(
            f"{r['id']:>8}  {r['created_at'][:19]}  {r['order_id'] or '-':19}  "
            f"{r['direction']:15}  {r['verdict']:8}  {status:10}  {r['subject'][:50]}"
        )


@archive_group.command("export")
@click.option("--order-id", "--order", "order_id", required=True, help="the order to export")
@click.option(
    "--format", "fmt", type=click.Choice(["mbox", "eml-dir"]), default="mbox",
    show_default=True, help="one mbox file or a directory of .eml files",
)
@click.option(
    "--part", type=click.Choice(["original", "delivered"]), default="original",
    show_default=True, help="the message as received or as delivered",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(),
    default=None,
    help="mbox: a file (default stdout); eml-dir: a directory (default ORDER_ID)",
)
@click.pass_obj
def export(state: CliState, order_id: str, fmt: str, part: str, output: str | None) -> None:
    """Export an order's thread, oldest first, as an mbox file or a directory of .eml."""
    from relay.store import archive as store

    rows = run_async(
        with_engine(state, lambda e: store.order_messages(e, order_id, part), readonly=True)
    )
    if not rows:
        raise click.ClickException(f"no archived {part} messages for order {order_id}")
    if fmt == "eml-dir":
        directory = Path(output or order_id)
        directory.mkdir(parents=True, exist_ok=True)
        with click.progressbar(rows, label="exporting", file=sys.stderr) as bar:
            for r in bar:
                (directory / f"{r.id:010d}-{r.direction or r.kind}.eml").write_bytes(r.data)
    else:
        blob = b"".join(store.mbox_entry(r) for r in rows)
        if output:
            Path(output).write_bytes(blob)
        else:
            sys.stdout.buffer.write(blob)
    click.echo(f"exported {len(rows)} messages of order {order_id}", err=True)


@archive_group.command("show")
@click.argument("record_id", type=click.IntRange(1, 2**63 - 1))
@click.option("--original", "part", flag_value="original", help="print the message as received")
@click.option("--delivered", "part", flag_value="delivered", help="print the message as delivered")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@click.pass_obj
def show(state: CliState, record_id: int, part: str | None, as_json: bool) -> None:
    """Show a record, or print its original or delivered .eml."""
    from relay.store import archive as store

    rec = run_async(with_engine(state, lambda e: store.get_record(e, record_id), readonly=True))
    if rec is None:
        raise click.ClickException(f"no archive record {record_id}")
    if part:
        data = rec[part]
        if data is None:
            raise click.ClickException(
                f"record {record_id} has no {part} copy (verdict {rec['verdict']})"
            )
        sys.stdout.buffer.write(bytes(data))
        return
    summary = {k: v for k, v in rec.items() if k not in ("original", "delivered")}
    summary["findings"] = json.loads(summary["findings"])
    summary["auth"] = json.loads(summary["auth"])
    summary["created_at"] = rec["created_at"].isoformat()
    summary["original_bytes"] = len(rec["original"])
    summary["delivered_bytes"] = len(rec["delivered"]) if rec["delivered"] else None
    if as_json:
        echo_json(summary)
        return
    for key, value in summary.items():
        click.echo(f"{key:18} {value}")


@archive_group.command("verify")
@click.pass_obj
def verify(state: CliState) -> None:
    """Walk the hash chain; exit 1 at the first record that does not verify."""
    from relay.store import archive as store

    async def run(engine: AsyncEngine) -> store_types.VerifyResult:
        total = await store.count_records(engine)
        with click.progressbar(length=total, label="verifying", file=sys.stderr) as bar:
            return await store.verify(engine, progress=bar.update)

    result = run_async(with_engine(state, run, readonly=True))
    if result.ok:
        click.echo(f"archive verified: {result.records} records, chain intact")
        return
    click.echo(
        f"archive BROKEN at record {result.first_bad}: {result.problem} "
        f"({result.records} records verified before it)",
        err=True,
    )
    sys.exit(1)
