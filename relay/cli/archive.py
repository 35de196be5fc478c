"""``relay archive search|show|verify``: what ops ask of the archive."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime

import click

from relay import archive as store
from relay.cli import CliState, echo_json, run_async, with_engine


@click.group("archive")
def archive_group() -> None:
    """The permanent message archive."""


def _utc(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value and value.tzinfo is None else value


@archive_group.command("search")
@click.option("--order", "order_id", default=None)
@click.option("--party", default=None, help="a buyer's or seller's real address")
@click.option("--since", type=click.DateTime(), default=None)
@click.option("--until", type=click.DateTime(), default=None)
@click.option(
    "--verdict", type=click.Choice(["deliver", "redact", "reject", "refused", "absorbed"])
)
@click.option("--direction", type=click.Choice(["buyer-to-seller", "seller-to-buyer", "notice"]))
@click.option("--limit", default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def search(
    state: CliState,
    order_id: str | None,
    party: str | None,
    since: datetime | None,
    until: datetime | None,
    verdict: str | None,
    direction: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Find archived messages, newest first."""
    f = store.SearchFilter(
        order_id=order_id,
        party=party,
        since=_utc(since),
        until=_utc(until),
        verdict=verdict,
        direction=direction,
        limit=limit,
    )
    rows = run_async(with_engine(state, lambda e: store.search(e, f)))
    if as_json:
        echo_json(rows)
        return
    for r in rows:
        status = ",".join(d["status"] for d in r["deliveries"]) or "-"
        click.echo(
            f"{r['id']:>8}  {r['created_at'][:19]}  {r['order_id'] or '-':19}  "
            f"{r['direction']:15}  {r['verdict']:8}  {status:10}  {r['subject'][:50]}"
        )


@archive_group.command("show")
@click.argument("record_id", type=int)
@click.option("--original", "part", flag_value="original", help="print the message as received")
@click.option("--delivered", "part", flag_value="delivered", help="print the message as delivered")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def show(state: CliState, record_id: int, part: str | None, as_json: bool) -> None:
    """Show a record, or print its original or delivered .eml."""
    rec = run_async(with_engine(state, lambda e: store.get_record(e, record_id)))
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
    result = run_async(with_engine(state, store.verify))
    if result.ok:
        click.echo(f"archive verified: {result.records} records, chain intact")
        return
    click.echo(
        f"archive BROKEN at record {result.first_bad}: {result.problem} "
        f"({result.records} records verified before it)",
        err=True,
    )
    sys.exit(1)
