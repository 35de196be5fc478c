"""Signed return paths: round trip, and every kind of forgery comes back None."""

from __future__ import annotations

import pytest

from relay.mail.verp import new_token, parse_return_path, return_path

KEY = bytes.fromhex("11" * 32)


def _local(address: str) -> str:
    return address.rpartition("@")[0]


def test_round_trip() -> None:
    token = new_token()
    address = return_path(token, key=KEY, domain="relay.example")
    assert address.startswith(f"bounce+{token}.") and address.endswith("@relay.example")
    assert parse_return_path(_local(address), key=KEY) == token


def test_tokens_are_unique_and_fit_the_column() -> None:
    tokens = {new_token() for _ in range(1000)}
    assert len(tokens) == 1000
    assert all(16 <= len(t) <= 32 for t in tokens)


def test_case_is_ignored() -> None:
    token = new_token()
    local = _local(return_path(token, key=KEY, domain="relay.example"))
    assert parse_return_path(local.upper(), key=KEY) == token


def test_custom_prefix() -> None:
    token = new_token()
    local = _local(return_path(token, key=KEY, domain="relay.example", prefix="Bounces"))
    assert parse_return_path(local, key=KEY, prefix="Bounces") == token
    assert parse_return_path(local, key=KEY, prefix="bounces") == token
    assert parse_return_path(local, key=KEY) is None


def _flip(ch: str) -> str:
    return "0" if ch != "0" else "1"


@pytest.mark.parametrize(
    "forge",
    [
        lambda token, mac: f"bounce+{token}.{mac[:-1]}{_flip(mac[-1])}",  # bad MAC
        lambda token, mac: f"bounce+{new_token()}.{mac}",  # another token, our MAC
        lambda token, mac: f"bounce+{token}",  # no MAC
        lambda token, mac: f"bounce+{token}.",  # empty MAC
        lambda token, mac: f"bounce+.{mac}",  # empty token
        lambda token, mac: "bounce+",
        lambda token, mac: f"bounce+{token}.{mac}0",  # MAC too long
        lambda token, mac: f"bounce+{token}.{mac[:8]}",  # truncated MAC
        lambda token, mac: f"bounce+{token[:8]}.{mac}",  # token too short
        lambda token, mac: f"bounce+{token}x{'0' * 40}.{mac}",  # token too long
        lambda token, mac: f"bounce+{token}-x.{mac}",  # bad characters
        lambda token, mac: f"bounce+{token}.{mac}.{mac}",
        lambda token, mac: f"other+{token}.{mac}",  # wrong prefix
        lambda token, mac: f"{token}.{mac}",
        lambda token, mac: "bounce+" + "é" * 20 + "." + mac,
    ],
)
def test_forgeries_are_refused(forge) -> None:  # type: ignore[no-untyped-def]
    token = new_token()
    mac = _local(return_path(token, key=KEY, domain="relay.example")).rpartition(".")[2]
    assert parse_return_path(forge(token, mac), key=KEY) is None


def test_another_key_does_not_verify() -> None:
    token = new_token()
    local = _local(return_path(token, key=bytes(32), domain="relay.example"))
    assert parse_return_path(local, key=KEY) is None
