"""``relay health``: the exit status containers and systemd act on."""

from __future__ import annotations

import json
from pathlib import Path

from relay.cli.health import ops_url
from tests.helpers import free_port, make_cert, relay_cli, running_relay, write_settings


def _config(tmp_path: Path, listen: str) -> Path:
    return write_settings(tmp_path / "health.toml", metrics={"listen": listen})


async def test_exit_status_follows_readiness(make_settings, tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path, "mx.relay.example", days=3)
    settings = make_settings(metrics={"listen": "127.0.0.1:0"})
    async with running_relay(settings, worker=False) as relay:
        config = _config(tmp_path, f"127.0.0.1:{relay.ops.port}")
        code, out, err = await relay_cli(config, "health")
        assert code == 0, out + err
        assert json.loads(out)["ready"] is True
        code, out, _ = await relay_cli(config, "health", "--live", "--quiet")
        assert (code, out) == (0, "")
    expiring = make_settings(
        metrics={"listen": "127.0.0.1:0"}, smtp={"tls_cert": str(cert), "tls_key": str(key)}
    )
    async with running_relay(expiring, worker=False) as relay:
        config = _config(tmp_path, f"127.0.0.1:{relay.ops.port}")
        code, out, _ = await relay_cli(config, "health")
        assert code == 1 and json.loads(out)["checks"]["tls"][0] is False, out
        code, _, _ = await relay_cli(config, "health", "--live")
        assert code == 0, "alive, only not ready"


async def test_unreachable_and_unconfigured(tmp_path: Path) -> None:
    code, _, err = await relay_cli(_config(tmp_path, f"127.0.0.1:{free_port()}"), "health")
    assert code == 2 and "cannot reach" in err
    write_settings(tmp_path / "none.toml", relay={"domain": "relay.example"})
    code, _, err = await relay_cli(tmp_path / "none.toml", "health")
    assert code != 0 and "metrics.listen" in err


def test_wildcard_listen_is_asked_on_loopback() -> None:
    assert ops_url("0.0.0.0:9125", "/readyz") == "http://127.0.0.1:9125/readyz"
    assert ops_url("[::]:9125", "/healthz") == "http://[::1]:9125/healthz"
    assert ops_url("10.0.1.11:9125", "/readyz") == "http://10.0.1.11:9125/readyz"
