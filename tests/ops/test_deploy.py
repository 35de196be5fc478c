"""deploy/ is tested, not just shipped: every settings example loads, the systemd units
pass ``systemd-analyze verify``, the HAProxy and Postfix files pass their own checkers,
and the container files say what the README promises (no container engine runs here)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from relay.settings import load_settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SETTINGS = sorted(DEPLOY.rglob("*.toml"))
UNITS = sorted((DEPLOY / "systemd").glob("*.service"))
RELAY_BIN = Path(sys.executable).parent / "relay"


@pytest.fixture(autouse=True)
def _no_relay_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The files alone must load: no RELAY_* variable of the test run may help them."""
    for name in list(os.environ):
        if name.startswith("RELAY_"):
            monkeypatch.delenv(name)


def test_settings_examples_are_all_found() -> None:
    names = {p.relative_to(DEPLOY).as_posix() for p in SETTINGS}
    assert {
        "relay.example.toml",
        "relay.dev.toml",
        "relay.production.toml",
        "compose/relay.toml",
        "haproxy/relay.toml",
        "postfix/relay.toml",
    } <= names


@pytest.mark.parametrize("path", SETTINGS, ids=lambda p: p.relative_to(DEPLOY).as_posix())
def test_settings_example_loads(path: Path) -> None:
    settings = load_settings(path)
    assert settings.relay.domain
    if path.parent.name == "haproxy":
        assert settings.smtp.proxy_protocol and settings.smtp.proxy_networks
        assert settings.metrics.listen, "HAProxy's health check needs /readyz"
    if path.parent.name == "postfix":
        assert settings.smtp.xforward and settings.smtp.proxy_networks == ["127.0.0.1/32"]
        assert settings.smtp.host_port[0] == "127.0.0.1"


@pytest.mark.parametrize("path", SETTINGS, ids=lambda p: p.relative_to(DEPLOY).as_posix())
def test_settings_that_send_mail_sign_it(path: Path) -> None:
    """Under enforce, a shipped file either signs or says explicitly that it does not."""
    from relay.cli.startup import check_signing

    settings = load_settings(path)
    check_signing(settings)  # raises for enforce without a key and without enabled = false
    if settings.auth.mode == "enforce":
        assert settings.dkim.key_file or settings.dkim.enabled is False


def test_start_up_refuses_to_deliver_unsigned_under_enforce(tmp_path: Path) -> None:
    base = (
        '[database]\nurl = "sqlite+aiosqlite:///{db}"\n[smtp]\nlisten = "127.0.0.1:0"\n'
        '[auth]\nmode = "enforce"\n'
    ).format(db=tmp_path / "r.sqlite3")
    unsigned = tmp_path / "unsigned.toml"
    unsigned.write_text(base)
    for args in (["serve"], ["worker"]):
        run = subprocess.run(
            [str(RELAY_BIN), "--config", str(unsigned), *args],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert run.returncode == 2, run.stderr
        assert "dkim.key_file" in run.stderr and "Traceback" not in run.stderr
    # Saying so explicitly lets it start (stopped again at once by SIGTERM).
    explicit = tmp_path / "explicit.toml"
    explicit.write_text(base + "[dkim]\nenabled = false\n")
    proc = subprocess.Popen(
        [str(RELAY_BIN), "--config", str(explicit), "worker"],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert "dkim.key_file" not in err


def test_production_settings_are_production_grade() -> None:
    s = load_settings(DEPLOY / "relay.production.toml")
    assert s.database.url.startswith("postgresql+asyncpg://")
    assert s.auth.mode == "enforce" and s.log.format == "json"
    assert s.smtp.tls_cert and s.metrics.listen
    assert ":" not in s.database.url.split("@")[0].removeprefix("postgresql+asyncpg://"), (
        "no password in the file: it comes from RELAY_DATABASE__URL"
    )


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_systemd_unit_verifies(unit: Path, tmp_path: Path) -> None:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed here")
    if not RELAY_BIN.exists():
        pytest.skip(f"no relay executable at {RELAY_BIN} to stand in for /opt/relay")
    text = unit.read_text()
    # verify checks that ExecStart exists: point it at this checkout's relay
    copy = tmp_path / unit.name
    copy.write_text(text.replace("/opt/relay/venv/bin/relay", str(RELAY_BIN)))
    result = subprocess.run([tool, "verify", str(copy)], capture_output=True, text=True, timeout=60)
    problems = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if line.strip() and "Failed to connect to bus" not in line
    ]
    assert result.returncode == 0 and not problems, problems
    for directive in (
        "User=relay",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/relay",
        "PrivateTmp=yes",
        "KillSignal=SIGTERM",
    ):
        assert directive in text, f"{unit.name} lacks {directive}"
    if unit.name == "relay.service":
        assert "AmbientCapabilities=CAP_NET_BIND_SERVICE" in text
        assert "CapabilityBoundingSet=CAP_NET_BIND_SERVICE" in text
        assert "ExecReload=/bin/kill -HUP $MAINPID" in text
    else:
        assert "CapabilityBoundingSet=\n" in text, "the worker needs no capability"
    stop = int(re.search(r"TimeoutStopSec=(\d+)s", text).group(1))  # type: ignore[union-attr]
    grace = load_settings(DEPLOY / "relay.production.toml").relay.shutdown_grace
    assert stop > grace.total_seconds(), "systemd would SIGKILL before the drain ends"


def test_haproxy_config_is_valid() -> None:
    tool = shutil.which("haproxy")
    if tool is None:
        pytest.skip("haproxy is not installed here (apt-get install haproxy)")
    cfg = DEPLOY / "haproxy" / "haproxy.cfg"
    result = subprocess.run([tool, "-c", "-f", str(cfg)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    text = cfg.read_text()
    assert "send-proxy-v2" in text and "uri /readyz" in text


def test_postfix_config_has_no_unknown_parameters() -> None:
    tool = shutil.which("postconf")
    if tool is None:
        pytest.skip("postfix is not installed here")
    conf = DEPLOY / "postfix"
    for flag in ("-n", "-M"):
        result = subprocess.run(
            [tool, "-c", str(conf), flag], capture_output=True, text=True, timeout=30
        )
        assert result.returncode == 0 and "warning" not in result.stderr, result.stderr
    master = (conf / "master.cf").read_text()
    assert "smtpd_proxy_filter=127.0.0.1:2525" in master
    smarthost = load_settings(conf / "relay.toml").delivery.smarthost
    assert f"{smarthost} inet" in master, "the relay's smarthost must be a Postfix listener"


def test_container_files() -> None:
    """No container engine runs here, so the image is not built; its promises are read."""
    containerfile = (DEPLOY / "Containerfile").read_text()
    assert re.search(r"^USER relay", containerfile, re.M), "the image must not run as root"
    assert re.search(r"HEALTHCHECK .*\n?.*relay\", \"health", containerfile)
    assert "COPY deploy/compose/relay.toml /etc/relay/relay.toml" in containerfile
    for copied in re.findall(r"^COPY (?!--)(\S+)", containerfile, re.M):
        assert (DEPLOY.parent / copied).exists(), f"Containerfile copies missing {copied}"
    compose = (DEPLOY / "compose.yaml").read_text()
    assert "dockerfile: deploy/Containerfile" in compose
    assert "image: docker.io/library/postgres" in compose
    assert "./compose/relay.toml:/etc/relay/relay.toml:ro" in compose
    for service in ("postgres:", "relay:", "worker:"):
        assert f"\n  {service}\n" in compose
    yaml = pytest.importorskip("yaml", reason="PyYAML not installed: compose.yaml not parsed")
    doc = yaml.safe_load(compose)
    assert set(doc["services"]) == {"postgres", "relay", "worker"}
    for name in ("relay", "worker"):
        svc = doc["services"][name]
        assert svc["cap_drop"] == ["ALL"] and svc["read_only"] is True
        assert int(svc["stop_grace_period"].rstrip("s")) > 30
