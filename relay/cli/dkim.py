"""``relay dkim keygen``: create the relay's DKIM key and print the record to publish."""

from __future__ import annotations

import os
from pathlib import Path

import click

from relay.cli import CliState
from relay.dkim import generate_key


def txt_record(name: str, value: str) -> str:
    """A zone-file TXT record, the value split into quoted strings of at most 255 chars."""
    chunks = [value[i : i + 255] for i in range(0, len(value), 255)] or [""]
    if len(chunks) == 1:
        return f'{name}. IN TXT "{chunks[0]}"'
    body = "\n    ".join(f'"{c}"' for c in chunks)
    return f"{name}. IN TXT (\n    {body} )"


def write_private(path: Path, data: bytes, force: bool) -> None:
    """Write a secret with mode 0600 from the start; never clobber without ``force``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and not force:
        raise click.ClickException(f"{path} exists; use --force to replace the key")
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@click.group()
def dkim() -> None:
    """The relay's DKIM signing key."""


@dkim.command("keygen")
@click.option("--selector", default=None, help="DKIM selector (default: dkim.selector)")
@click.option(
    "--algorithm",
    type=click.Choice(["rsa", "ed25519"]),
    default="rsa",
    show_default=True,
    help="rsa: RSA 2048 (rsa-sha256); ed25519: ed25519-sha256 (RFC 8463)",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="key file (default: dkim.key_file, else ./dkim-<selector>.pem)",
)
@click.option("--force", is_flag=True, help="replace an existing key file")
@click.pass_obj
def keygen(
    state: CliState, selector: str | None, algorithm: str, out: Path | None, force: bool
) -> None:
    """Write a new private key (mode 0600) and print the DNS TXT record for it."""
    settings = state.settings
    selector = selector or settings.dkim.selector
    path = out or settings.dkim.key_file or Path(f"dkim-{selector}.pem")
    pem, txt = generate_key(algorithm)
    write_private(path, pem, force)
    click.echo(f"; wrote {path} (mode 0600); publish this record:", err=True)
    click.echo(txt_record(f"{selector}._domainkey.{settings.relay.domain}", txt))
    wanted = "rsa-sha256" if algorithm == "rsa" else "ed25519-sha256"
    if settings.dkim.algorithm != wanted or settings.dkim.key_file != path:
        click.echo(
            f'; then set [dkim] key_file = "{path}", selector = "{selector}", '
            f'algorithm = "{wanted}"',
            err=True,
        )
