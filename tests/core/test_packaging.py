"""The wheel carries the migrations and the policy: `relay db upgrade` works installed."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    if result.returncode != 0 and "hatchling" in result.stderr:
        pytest.skip("hatchling is not installed in this environment")
    assert result.returncode == 0, result.stderr
    return next(out.glob("relay-*.whl"))


def test_wheel_contains_migrations_and_policies(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "relay/_migrations/env.py" in names
    assert any(n.startswith("relay/_migrations/versions/0001_") for n in names)
    assert "relay/_policies/default.toml" in names


def test_installed_wheel_migrates_a_fresh_database(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    db = tmp_path / "relay.sqlite3"
    env = {
        "PYTHONPATH": str(site),
        "RELAY_DATABASE__URL": f"sqlite+aiosqlite:///{db}",
        "PATH": "/usr/bin:/bin",
    }
    probe = subprocess.run(
        [sys.executable, "-c", "import relay.db.migrate as m; print(m.migrations_dir())"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == str(site / "relay" / "_migrations")
    run = subprocess.run(
        [sys.executable, "-m", "relay", "db", "upgrade"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert "revision" in run.stdout and db.exists()
