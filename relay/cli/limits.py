"""``relay limits show PARTY``: a party's rate counters against its limits, for ops."""

from __future__ import annotations

import click

from relay.cli import CliState, echo_json, run_async, with_engine


@click.group("limits")
def limits() -> None:
    """Rate limits and the archive allowance ([limits], relay.ratelimits)."""


@limits.command("show")
@click.argument("party_email")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@click.pass_obj
def show(state: CliState, party_email: str, as_json: bool) -> None:
    """PARTY_EMAIL's counters now (this hour, today), its orders' counters, strangers at
    its aliases this hour, and today's refusals by limit."""
    from relay.ratelimits import party_view

    try:
        data = run_async(
            with_engine(state, lambda e: party_view(e, state.settings, party_email), readonly=True)
        )
    except LookupError as err:
        raise click.ClickException(str(err).strip("'\"")) from None
    if as_json:
        echo_json(data)
        return
    click.echo(f"party {data['party']} at {data['at']}")
    for name, v in data["limits"].items():
        click.echo(f"  {name:30} {v['used']:>12} of {v['limit'] or 'off'}")
    for order_id, v in data["orders"].items():
        click.echo(
            f"  order {order_id}: {v['today']} today of {v['per_order_day'] or 'off'}, "
            f"{v['proactive']} proactive of {v['proactive_per_order'] or 'off'}"
        )
    for alias, n in data["strangers_this_hour"].items():
        click.echo(f"  alias {alias}: {n} strangers this hour of "
                   f"{data['stranger_per_alias_hour'] or 'off'}")
    hits = data["hits_today"]
    click.echo("  refused today: " + (", ".join(f"{k} {n}" for k, n in hits.items()) or "none"))
