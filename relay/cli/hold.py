"""``relay hold list|release|refuse``: ops decide what the policy held (relay.store.holds)."""

from __future__ import annotations

import getpass
from typing import Any

import click

from relay.cli import CliState, echo_json, run_async, with_engine


@click.group("hold")
def hold() -> None:
    """Messages the content policy held: list them, release or refuse each once."""


def _who(by: str | None) -> str:
    try:
        return by or f"cli:{getpass.getuser()}"
    except Exception:
        return by or "cli"


async def _verp_key(state: CliState, engine: Any) -> bytes:
    from relay.store import secrets_store

    s = state.settings
    if s.bounce.secret:
        return bytes.fromhex(s.bounce.secret)
    return await secrets_store.get_or_create(engine, "verp_key")


@hold.command("list")
@click.option("--all", "show_all", is_flag=True, help="decided holds too")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@click.pass_obj
def list_cmd(state: CliState, show_all: bool, as_json: bool) -> None:
    """Held messages, oldest first (undecided ones unless --all)."""
    from relay.store.holds import list_holds

    rows = run_async(with_engine(state, lambda e: list_holds(e, pending=not show_all),
                                 readonly=True))
    if as_json:
        echo_json([h.as_dict() for h in rows])
        return
    if not rows:
        click.echo("no held messages")
    for h in rows:
        state_ = f"{h.decision} by {h.decided_by}" if h.decision else "waiting"
        click.echo(f"{h.id:>8}  {h.created_at:%Y-%m-%d %H:%M}  {h.order_id}  {h.direction:<16} "
                   f"{', '.join(h.rules) or '-':<28} {state_}  {h.subject[:40]!r}")


@hold.command("release")
@click.argument("hold_id", type=int)
@click.option("--by", default=None, help="who decides (default: cli:<user>)")
@click.pass_obj
def release_cmd(state: CliState, hold_id: int, by: str | None) -> None:
    """Deliver held message HOLD_ID through the normal queue."""
    from relay.store.holds import HoldError, release

    s = state.settings

    async def go(engine: Any) -> int:
        return await release(engine, hold_id, by=_who(by), verp_key=await _verp_key(state, engine),
                             domain=s.relay.domain, bounce_prefix=s.bounce.local_prefix)

    try:
        delivery = run_async(with_engine(state, go))
    except HoldError as err:
        raise click.ClickException(str(err).strip("'\"")) from None
    click.echo(f"released {hold_id}: queued as delivery {delivery}")


@hold.command("refuse")
@click.argument("hold_id", type=int)
@click.option("--reason", required=True, help="why (the sender's notice names the rule; "
              "addresses, numbers and links in this text are left out of it)")
@click.option("--by", default=None, help="who decides (default: cli:<user>)")
@click.pass_obj
def refuse_cmd(state: CliState, hold_id: int, reason: str, by: str | None) -> None:
    """Refuse held message HOLD_ID; the sender gets a notice."""
    from relay.store.holds import HoldError, refuse

    s = state.settings
    try:
        sent = run_async(with_engine(state, lambda e: refuse(
            e, hold_id, by=_who(by), reason=reason, domain=s.relay.domain,
            marketplace=s.relay.marketplace)))
    except HoldError as err:
        raise click.ClickException(str(err).strip("'\"")) from None
    click.echo(f"refused {hold_id}" + ("; the sender was notified" if sent else
                                       "; no notice (automatic mail or no sender)"))
