"""Fixtures for the Message Center: the API tests' database, order and archiver, plus an
httpx client on the whole API app (so the pages are tested where ``relay api`` serves
them) and a logged-in variant."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from relay.api import create_app
from tests.api.conftest import (  # noqa: F401 - fixtures re-exported for tests/web
    OPS_TOKEN,
    archive_msg,
    engine,
    order,
    settings,
)

BASE = "http://relay.test"
SAME_SITE = {"Origin": BASE}


@pytest.fixture
async def client(
    settings: Any,  # noqa: F811
    engine: Any,  # noqa: F811
) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(settings, engine))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as c:
        yield c


async def log_in(c: httpx.AsyncClient, token: str = OPS_TOKEN, **headers: str) -> httpx.Response:
    return await c.post(
        "/ui/login", data={"token": token, "next": "/ui/"}, headers=headers or SAME_SITE
    )


@pytest.fixture
async def ops(client: httpx.AsyncClient) -> httpx.AsyncClient:
    r = await log_in(client)
    assert r.status_code == 303, r.text
    return client
