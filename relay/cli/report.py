"""``relay report response-times``: the marketplace's 24-hour rule, per seller."""

from __future__ import annotations

import click

from relay.cli import CliState, echo_json, run_async, with_engine


@click.group("report")
def report() -> None:
    """Reports computed from the archive."""


def _hours(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds / 3600:.1f} h"


@report.command("response-times")
@click.option("--seller", default=None, help="one seller's real address")
@click.option(
    "--days", type=click.Choice(["7", "30", "90"]), default="30", show_default=True,
    help="look back this many days",
)
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@click.pass_obj
def response_times(state: CliState, seller: str | None, days: str, as_json: bool) -> None:
    """Per seller: late-response rate, average response time, open overdue messages."""
    from relay.store import reports

    data = run_async(
        with_engine(
            state,
            lambda e: reports.response_times(e, days=int(days), seller=seller),
            readonly=True,
        )
    )
    if as_json:
        echo_json(data)
        return
    click.echo(f"buyer messages of the last {days} days, deadline {data['deadline_hours']} h")
    click.echo(f"{'seller':40} {'msgs':>5} {'late%':>6} {'avg':>9} {'overdue':>7} {'open':>5}")
    for s in data["sellers"]:
        rate = "-" if s["late_rate"] is None else f"{s['late_rate'] * 100:.0f}%"
        click.echo(
            f"{s['seller']:40} {s['buyer_messages']:>5} {rate:>6} "
            f"{_hours(s['average_response_seconds']):>9} {s['open_overdue']:>7} "
            f"{s['open_within_deadline']:>5}"
        )
        for o in s["overdue"]:
            click.echo(
                f"    overdue: record {o['archive_id']} order {o['order_id']} "
                f"waiting {o['hours_waiting']} h"
            )
