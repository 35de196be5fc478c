"""schemathesis, every check, against the live API (a real `relay api` process on
loopback, on SQLite and PostgreSQL): the OpenAPI document and the server agree."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

TOKEN = "schemathesis-token-0123456789"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def live_api(db_url: str, tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    config = tmp_path / "relay.toml"
    config.write_text(
        f'[database]\nurl = "{db_url}"\n'
        f'[api]\nlisten = "127.0.0.1:{port}"\n'
        f'marketplace_tokens = ["{TOKEN}"]\nops_tokens = ["{TOKEN}"]\n'
        '[log]\nlevel = "warning"\n'
    )
    relay = Path(sys.executable).with_name("relay")
    proc = subprocess.Popen([str(relay), "--config", str(config), "api"], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(proc.communicate()[1].decode()[-2000:])
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    _, err = proc.communicate(timeout=30)
    assert b"Traceback" not in err, err.decode()[-3000:]


def test_schemathesis_finds_nothing(live_api: str, tmp_path: Path) -> None:
    st = shutil.which("st", path=str(Path(sys.executable).parent))
    if st is None:
        pytest.skip("schemathesis is not installed (pip install -e '.[test]')")
    run = subprocess.run(
        [st, "run", f"{live_api}/openapi.json", "--checks", "all", "--max-examples", "5",
         "--seed", "1", "-H", f"Authorization: Bearer {TOKEN}", "--no-color"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,  # its cache stays there
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-6000:]
    assert "Tested: 17" in run.stdout or "Tested:" in run.stdout, run.stdout[-2000:]
