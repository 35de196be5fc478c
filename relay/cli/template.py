"""``relay template list|show|send``: approved seller->buyer templates."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from relay.cli import CliState, echo_json, run_async, with_engine

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine


@click.group("template")
def template() -> None:
    """Approved seller->buyer message templates (policies/templates/)."""


def _error(err: Exception) -> click.ClickException:
    return click.ClickException(str(err))


@template.command("list")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def list_(as_json: bool) -> None:
    """Templates, their locales and the variables each needs."""
    from relay import templates

    found = templates.load_all()
    if as_json:
        echo_json([
            {"name": t.name, "title": t.title, "locales": sorted(t.texts),
             "variables": list(t.variables)}
            for t in found.values()
        ])  # fmt: skip
        return
    for t in found.values():
        variables = ", ".join(t.variables) or "-"
        click.echo(f"{t.name:26} {t.title:32} vars: {variables}")


@template.command("show")
@click.argument("name")
@click.option("--locale", default="en", show_default=True, help="the template language")
@click.option("--var", "pairs", multiple=True, metavar="KEY=VALUE", help="a placeholder value")
def show(name: str, locale: str, pairs: tuple[str, ...]) -> None:
    """Render a template without sending it (order id 000-0000000-0000000)."""
    from relay import templates

    try:
        lang, subject, body = templates.get(name).render(
            locale, "000-0000000-0000000", _vars(pairs)
        )
    except templates.TemplateError as err:
        raise _error(err) from None
    click.echo(f"[{lang}] Subject: {subject}\n\n{body}")


def _vars(pairs: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key.strip():
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--var")
        out[key.strip()] = value
    return out


@template.command("send")
@click.argument("order_id")
@click.argument("name")
@click.option("--var", "pairs", multiple=True, metavar="KEY=VALUE", help="a placeholder value")
@click.option("--locale", default=None, help="override the buyer's locale")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@click.pass_obj
def send(
    state: CliState,
    order_id: str,
    name: str,
    pairs: tuple[str, ...],
    locale: str | None,
    as_json: bool,
) -> None:
    """Send template NAME to ORDER_ID's buyer, from the seller, through the pipeline.

    The message is policy-checked, archived and queued like any mail; a running
    `relay serve` (or `relay worker`) delivers it.
    """
    from relay import templates
    from relay.log import configure

    given = _vars(pairs)
    settings = state.settings
    configure(settings.log.format, settings.log.level)  # to stderr: stdout is for --json

    async def go(engine: AsyncEngine) -> templates.Sent:
        return await templates.TemplateSender(settings, engine).send(order_id, name, given, locale)

    try:
        sent = run_async(with_engine(state, go))
    except templates.TemplateError as err:
        raise _error(err) from None
    if as_json:
        echo_json(sent.as_dict())
        return
    click.echo(f"sent {name} [{sent.locale}] to the buyer of {order_id}: {sent.reply}")
