"""relay.settings_lite: the read-only commands' two settings, read without pydantic, must
mean what the full loader (relay.settings) means, and leave anything unusual to it."""

from __future__ import annotations

from pathlib import Path

import pytest

from relay import settings_lite
from relay.settings import ArchiveSection, DatabaseSection, load_settings


def test_known_keys_are_the_models_fields() -> None:
    assert settings_lite.KNOWN["database"] == set(DatabaseSection.model_fields)
    assert settings_lite.KNOWN["archive"] == set(ArchiveSection.model_fields)


@pytest.mark.parametrize(
    ("toml", "env"),
    [
        ("", {}),
        ('[database]\nurl = "sqlite+aiosqlite:///x.sqlite3"\n[archive]\nsearch_timeout = "2m"\n',
         {}),
        ('[database]\nurl = "sqlite+aiosqlite:///x.sqlite3"\n',
         {"RELAY_DATABASE__URL": "postgresql+asyncpg://u@h/db",
          "relay_archive__search_timeout": "1.5s"}),
        ("[smtp]\nlisten = \"127.0.0.1:2525\"\n[archive]\nsearch_timeout = 0\n", {}),
    ],
)  # fmt: skip
def test_same_values_as_the_full_loader(tmp_path: Path, monkeypatch, toml, env) -> None:
    for key in list(__import__("os").environ):
        if key.upper().startswith("RELAY_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    path = tmp_path / "relay.toml"
    path.write_text(toml)
    full = load_settings(path)
    lite = settings_lite.read(str(path))
    assert lite is not None
    assert lite.url == full.database.url
    assert lite.search_timeout == full.archive.search_timeout.total_seconds()


@pytest.mark.parametrize(
    "toml",
    [
        '[database]\nurll = "sqlite+aiosqlite:///x"\n',  # a typo: the full loader names it
        '[database]\nurl = "mysql://x"\n',
        '[archive]\nsearch_timeout = "soon"\n',
        '[archive]\nsearch_timeout = -1\n',
        "[database\n",
        'database = "x"\n',
    ],
)
def test_anything_unusual_is_left_to_the_full_loader(tmp_path: Path, toml: str) -> None:
    path = tmp_path / "relay.toml"
    path.write_text(toml)
    assert settings_lite.read(str(path)) is None
    assert settings_lite.read(str(tmp_path / "missing.toml")) is None


def test_a_section_as_json_in_the_environment_is_left_to_the_full_loader(monkeypatch) -> None:
    monkeypatch.setenv("RELAY_DATABASE", '{"url": "sqlite+aiosqlite:///y"}')
    assert settings_lite.read(None) is None
