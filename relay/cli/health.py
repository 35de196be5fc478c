"""``relay health``: ask the running relay's ``/readyz`` and exit non-zero when not ready.

For container HEALTHCHECKs and systemd (``ExecStartPost``/watchdog scripts): the exit
status is the answer, the JSON body says which check failed.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

import click

from relay.cli import CliState, StartupError
from relay.settings import parse_hostport

_LOOPBACK = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def ops_url(listen: str, path: str) -> str:
    """The URL of our own ops endpoint; a wildcard listen address is asked on loopback."""
    host, port = parse_hostport(listen, 9125)
    host = _LOOPBACK.get(host, host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}{path}"


@click.command()
@click.option("--live", is_flag=True, help="liveness only (/healthz) instead of readiness")
@click.option("--url", default="", help="ask this URL instead of metrics.listen's /readyz")
@click.option("--timeout", default=5.0, show_default=True, help="seconds")
@click.option("--quiet", "-q", is_flag=True, help="print nothing; the exit status says it")
@click.pass_obj
def health(state: CliState, live: bool, url: str, timeout: float, quiet: bool) -> None:
    """Exit 0 when the relay is ready (1 when not, 2 when it cannot be asked)."""
    if not url:
        listen = state.settings.metrics.listen
        if not listen:
            raise StartupError("setting 'metrics.listen': not set, so there is nothing to ask")
        url = ops_url(listen, "/healthz" if live else "/readyz")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            status, body = resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as err:
        status, body = err.code, err.read().decode(errors="replace")
    except (urllib.error.URLError, OSError) as err:
        if not quiet:
            click.echo(f"relay health: cannot reach {url}: {getattr(err, 'reason', err)}", err=True)
        sys.exit(2)
    if not quiet:
        click.echo(body.rstrip())
    sys.exit(0 if status == 200 else 1)
