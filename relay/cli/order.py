"""``relay order ...`` and ``relay party ...``: provisioning from a shell."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click

from relay.cli import CliState, echo_json, run_async, with_engine
from relay.store import orders


def _run(state: CliState, fn: Any, *, readonly: bool = False) -> Any:
    try:
        return run_async(with_engine(state, fn, readonly=readonly))
    except orders.OrderError as err:
        raise click.ClickException(str(err)) from None


def _run_read(state: CliState, fn: Any) -> Any:
    """A command that only reads: refuses a database that does not exist."""
    return _run(state, fn, readonly=True)


def _print(view: orders.OrderView, as_json: bool) -> None:
    if as_json:
        echo_json({"order_id": view.id, **view.as_dict()})  # as the API: order_id (+ id)
        return
    click.echo(f"order {view.id} ({view.status})")
    click.echo(f"  buyer  {view.buyer_name or '-'}  reached at {view.buyer_alias}")
    click.echo(f"  seller {view.seller_name or '-'}  reached at {view.seller_alias}")
    click.echo(f"  buyer locale {view.buyer_locale}, created {view.created_at:%Y-%m-%d %H:%M} UTC")


@click.group()
def order() -> None:
    """Orders and their two aliases."""


@order.command("create")
@click.argument("order_id")
@click.option("--buyer", required=True, help="the buyer's real address")
@click.option("--seller", required=True, help="the seller's real address")
@click.option(
    "--buyer-locale", default="en-US", show_default=True,
    help="the buyer's language (BCP 47); the seller must write in it",
)
@click.option("--buyer-name", default="", help="shown as the buyer's display name")
@click.option("--seller-name", default="", help="shown as the seller's display name")
@click.option(
    "--delivered-at", type=click.DateTime(), default=None, help="parcel delivery date (UTC)"
)
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@click.pass_obj
def create(
    state: CliState,
    order_id: str,
    buyer: str,
    seller: str,
    buyer_locale: str,
    buyer_name: str,
    seller_name: str,
    delivered_at: datetime | None,
    as_json: bool,
) -> None:
    """Register an order and mint its buyer and seller aliases."""
    from datetime import UTC

    domain = state.settings.relay.domain
    when = delivered_at.replace(tzinfo=UTC) if delivered_at else None
    view = _run(
        state,
        lambda e: orders.create_order(
            e,
            domain,
            order_id,
            buyer=buyer,
            seller=seller,
            buyer_locale=buyer_locale,
            buyer_name=buyer_name,
            seller_name=seller_name,
            delivered_at=when,
        ),
    )
    _print(view, as_json)


@order.command("show")
@click.argument("order_id")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@click.option(
    "--alias",
    type=click.Choice(["buyer", "seller"]),
    default=None,
    help="print only the alias that reaches this party (for scripts)",
)
@click.pass_obj
def show(state: CliState, order_id: str, as_json: bool, alias: str | None) -> None:
    """Show one order."""
    view = _run_read(
        state, lambda e: orders.get_order(e, state.settings.relay.domain, order_id)
    )
    if alias:
        click.echo(view.buyer_alias if alias == "buyer" else view.seller_alias)
        return
    _print(view, as_json)


@order.command("list")
@click.option("--party", default=None, help="only orders of this buyer or seller")
@click.option(
    "--status", type=click.Choice(["open", "closed"]), default=None, help="only this status"
)
@click.option("--limit", default=100, show_default=True, help="at most this many orders")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@click.pass_obj
def list_(
    state: CliState, party: str | None, status: str | None, limit: int, as_json: bool
) -> None:
    """List orders, newest first."""
    views = _run_read(
        state,
        lambda e: orders.list_orders(
            e, state.settings.relay.domain, party=party, status=status, limit=limit
        ),
    )
    if as_json:
        echo_json([{"order_id": v.id, **v.as_dict()} for v in views])
        return
    for v in views:
        click.echo(f"{v.id}  {v.status:6}  {v.buyer_alias}  {v.seller_alias}")


def _status_command(name: str, status: str, doc: str) -> None:
    @order.command(name, help=doc)
    @click.argument("order_id")
    @click.option("--json", "as_json", is_flag=True, help="print JSON")
    @click.pass_obj
    def command(state: CliState, order_id: str, as_json: bool) -> None:
        view = _run(
            state, lambda e: orders.set_status(e, state.settings.relay.domain, order_id, status)
        )
        _print(view, as_json)


_status_command("close", "closed", "Close an order: its aliases stop accepting mail.")
_status_command("reopen", "open", "Reopen a closed order.")


@click.group()
def party() -> None:
    """Buyers and sellers: authorised sender addresses."""


@party.command("add-sender")
@click.argument("party_email")
@click.argument("sender")
@click.pass_obj
def add_sender(state: CliState, party_email: str, sender: str) -> None:
    """Authorise SENDER to write on behalf of PARTY_EMAIL."""
    _run(state, lambda e: orders.add_sender(e, party_email, sender))
    click.echo(f"{sender} may now send for {party_email}")


@party.command("set")
@click.argument("party_email")
@click.option(
    "--allow-spf-only/--require-dkim",
    default=None,
    required=True,
    help="accept an aligned SPF pass alone for this party's mail (no DKIM)",
)
@click.pass_obj
def set_party(state: CliState, party_email: str, allow_spf_only: bool) -> None:
    """Change a party's authentication requirements."""
    _run(state, lambda e: orders.set_party(e, party_email, allow_spf_only=allow_spf_only))
    click.echo(
        f"{party_email}: {'aligned SPF or DKIM' if allow_spf_only else 'aligned DKIM'} required"
    )


@party.command("remove-sender")
@click.argument("party_email")
@click.argument("sender")
@click.pass_obj
def remove_sender(state: CliState, party_email: str, sender: str) -> None:
    """Withdraw an authorised sender."""
    _run(state, lambda e: orders.remove_sender(e, party_email, sender))
    click.echo(f"{sender} may no longer send for {party_email}")


@party.command("senders")
@click.argument("party_email")
@click.pass_obj
def senders(state: CliState, party_email: str) -> None:
    """List a party's authorised senders (besides its own address)."""
    for email in _run_read(state, lambda e: orders.list_senders(e, party_email)):
        click.echo(email)


# --- the buyer's choices (relay.store.choices; issue 13) ----------------------------------------


def _choice(state: CliState, fn: Any, as_json: bool, text: str) -> None:
    from relay.store.choices import ChoiceError

    try:
        data = run_async(with_engine(state, fn))
    except ChoiceError as err:
        raise click.ClickException(str(err)) from None
    if as_json:
        echo_json(data)
    else:
        click.echo(text.format(**data))


_BY = click.option("--by", default="ops", show_default=True, help="who asked (kept with it)")
_JSON = click.option("--json", "as_json", is_flag=True, help="print JSON")


@order.command("opt-out")
@click.argument("order_id")
@_BY
@_JSON
@click.pass_obj
def opt_out(state: CliState, order_id: str, by: str, as_json: bool) -> None:
    """The buyer wants no more proactive messages from this order's seller (replies and
    critical messages still reach them)."""
    from relay.store import choices

    _choice(state, lambda e: choices.order_opt_out(e, order_id, by=by), as_json,
            "order {order_id}: buyer opted out of proactive seller messages")


@order.command("opt-in")
@click.argument("order_id")
@_JSON
@click.pass_obj
def opt_in(state: CliState, order_id: str, as_json: bool) -> None:
    """Undo opt-out: the seller may write first again."""
    from relay.store import choices

    _choice(state, lambda e: choices.order_opt_in(e, order_id), as_json,
            "order {order_id}: seller messages allowed again")


@order.command("no-reply-needed")
@click.argument("order_id")
@click.option("--reason", default="", help="kept with the exemption")
@_BY
@_JSON
@click.pass_obj
def no_reply_needed(state: CliState, order_id: str, reason: str, by: str, as_json: bool) -> None:
    """The thread needs no reply: its open buyer messages leave the 24-hour report."""
    from relay.store import choices

    _choice(
        state, lambda e: choices.no_reply_needed(e, order_id, reason=reason, by=by), as_json,
        "order {order_id}: no reply needed (buyer messages exempted: {exempted})",
    )


@party.command("opt-out")
@click.argument("email")
@_BY
@_JSON
@click.pass_obj
def party_opt_out(state: CliState, email: str, by: str, as_json: bool) -> None:
    """A buyer opts out account-wide: no seller's proactive messages in any order."""
    from relay.store import choices

    _choice(state, lambda e: choices.party_opt_out(e, email, by=by), as_json,
            "{party}: opted out of proactive seller messages")


@party.command("opt-in")
@click.argument("email")
@_JSON
@click.pass_obj
def party_opt_in(state: CliState, email: str, as_json: bool) -> None:
    """Undo party opt-out."""
    from relay.store import choices

    _choice(state, lambda e: choices.party_opt_in(e, email), as_json,
            "{party}: seller messages allowed again")
