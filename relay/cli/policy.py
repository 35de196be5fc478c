"""``relay policy``: judge a message offline, run the labelled cases, show the policy.

``check`` is the contract the labelled cases are run through (policy-spec.md): one JSON
object on stdout, exit 0 whatever the verdict, non-zero only when it cannot judge.
"""

from __future__ import annotations

import json
import pathlib
import sys
from typing import TYPE_CHECKING

import click

from relay.core.errors import StartupError

if TYPE_CHECKING:
    from relay.policy import PolicyEngine


def _engine(ctx: click.Context, policy_file: str | None) -> PolicyEngine:
    from relay.policy import PolicyEngine, PolicyError

    path = pathlib.Path(policy_file) if policy_file else None
    if path is None and ctx.obj is not None:
        try:
            path = ctx.obj.settings.policy.file
        except StartupError:
            if ctx.obj.config:
                raise
            path = None
    try:
        return PolicyEngine.load(path)
    except PolicyError as err:
        raise click.ClickException(str(err)) from None


_POLICY_OPT = click.option("--policy", "policy_file", type=click.Path(dir_okay=False),
                           help="policy TOML (default: settings policy.file, else shipped)")


@click.group()
def policy() -> None:
    """Content policy: check a message, evaluate labelled cases, show the rules."""


@policy.command()
@click.argument("message", type=click.Path(dir_okay=False))
@click.option("--context", "context_file", required=True, type=click.Path(dir_okay=False),
              help="JSON context (direction, order_id, buyer_locale, thread, ...)")
@click.option("--out", "out_file", type=click.Path(dir_okay=False),
              help="write the message as it would be forwarded (nothing for reject)")
@click.option("--json", "as_json", is_flag=True, help="print the verdict as JSON")
@_POLICY_OPT
@click.pass_context
def check(ctx: click.Context, message: str, context_file: str, out_file: str | None,
          as_json: bool, policy_file: str | None) -> None:
    """Judge MESSAGE.eml in a context."""
    from relay.policy import PolicyContext

    try:
        raw = pathlib.Path(message).read_bytes()
        data = json.loads(pathlib.Path(context_file).read_text(encoding="utf-8"))
        fields = set(PolicyContext.__dataclass_fields__)
        unknown = sorted(set(data) - fields)
        if unknown:
            raise ValueError(f"unknown context key: {unknown[0]}")
        if data.get("direction") not in ("buyer-to-seller", "seller-to-buyer"):
            raise ValueError("context key direction: must be buyer-to-seller or seller-to-buyer")
        pctx = PolicyContext(**{k: v for k, v in data.items() if v is not None or k ==
                                "days_since_delivery"})
    except (OSError, ValueError, TypeError) as err:
        click.echo(f"relay policy check: cannot judge: {err}", err=True)
        sys.exit(2)
    engine = _engine(ctx, policy_file)
    verdict = engine.evaluate(raw, pctx)
    if out_file:
        out = pathlib.Path(out_file)
        if verdict.message is not None:
            out.write_bytes(verdict.message)
        elif out.exists():
            out.unlink()
    if as_json:
        # exactly the spec's object; the reason is in the plain output and the SMTP reply
        obj = {"action": verdict.action, "findings": [f.as_dict() for f in verdict.findings]}
        click.echo(json.dumps(obj, ensure_ascii=False))
    else:
        click.echo(verdict.action + (f": {verdict.reason}" if verdict.reason else ""))
        for f in verdict.findings:
            click.echo(f"  {f.action:<7} {f.kind:<22} {f.rule:<22} {f.where}  {f.excerpt!r}")


@policy.command("eval")
@click.argument("directory", type=click.Path(file_okay=False, exists=True))
@_POLICY_OPT
@click.pass_context
def eval_(ctx: click.Context, directory: str, policy_file: str | None) -> None:
    """Run the labelled cases in DIRECTORY (labels.json) and report pass rate per kind."""
    from relay.policy.evaluation import run_eval

    _, lines = run_eval(pathlib.Path(directory), _engine(ctx, policy_file))
    for line in lines:
        click.echo(line)


@policy.command()
@_POLICY_OPT
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@click.pass_context
def show(ctx: click.Context, policy_file: str | None, as_json: bool) -> None:
    """Print the effective policy: each rule with its action and description."""
    engine = _engine(ctx, policy_file)
    rules = engine.describe()
    if as_json:
        click.echo(json.dumps({"source": str(engine.policy.source), "rules": rules,
                               "settings": engine.policy.file.model_dump()}, indent=2))
        return
    click.echo(f"policy: {engine.policy.source}")
    for r in rules:
        click.echo(f"{r['action']:<7} {r['name']:<24} ({r['scope']}) {r['description']}")
    d = engine.policy.file.domains
    click.echo(f"allowed https domains: marketplace {len(d.marketplace)}, carriers "
               f"{len(d.carriers)}, allow {len(d.allow)}")
    lim = engine.policy.file.limits
    click.echo(f"limits: attachments {lim.max_attachment_bytes} bytes, depth {lim.max_depth}, "
               f"parts {lim.max_parts}")
