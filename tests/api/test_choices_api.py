"""Opt-out, opt-in, no reply needed and party limits over the HTTP API (issue 13)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from relay.api import create_app
from tests.api.conftest import MARKET_TOKEN, OPS_TOKEN
from tests.helpers import BUYER, ORDER, SELLER


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def client(settings: Any, engine: Any) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, engine)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as c:
        yield c


async def test_order_and_party_opt_out(client: httpx.AsyncClient, order: Any) -> None:
    h = auth(MARKET_TOKEN)
    r = await client.post(f"/v1/orders/{ORDER}/opt-out", headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["opted_out"] is True and r.json()["by"] == "marketplace"
    status = (await client.get(f"/v1/orders/{ORDER}/opt-out", headers=h)).json()
    assert status["order_opt_out"]["created_by"] == "marketplace"
    assert status["buyer_opt_out"] is None
    r = await client.post(f"/v1/parties/{BUYER}/opt-out", headers=auth(OPS_TOKEN))
    assert r.status_code == 200 and r.json()["by"] == "ops", r.text
    status = (await client.get(f"/v1/orders/{ORDER}/opt-out", headers=h)).json()
    assert status["buyer_opt_out"] is not None
    r = await client.delete(f"/v1/orders/{ORDER}/opt-out", headers=h)
    assert r.json() == {"order_id": ORDER, "opted_out": False, "removed": True}
    r = await client.delete(f"/v1/parties/{BUYER}/opt-out", headers=h)
    assert r.json()["removed"] is True
    r = await client.delete(f"/v1/parties/{BUYER}/opt-out", headers=h)
    assert r.json()["removed"] is False
    r = await client.post("/v1/orders/999-0000000-0000000/opt-out", headers=h)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = await client.post("/v1/parties/nobody@else.example/opt-out", headers=h)
    assert r.status_code == 404
    r = await client.post("/v1/orders/not-an-order/opt-out", headers=h)
    assert r.status_code == 422
    assert (await client.post(f"/v1/orders/{ORDER}/opt-out")).status_code == 401


async def test_no_response_needed_for_the_thread(
    client: httpx.AsyncClient, order: Any, archive_msg: Any
) -> None:
    first = await archive_msg(order, "buyer-to-seller")
    await archive_msg(order, "seller-to-buyer")
    later = await archive_msg(order, "buyer-to-seller")
    r = await client.post(f"/v1/orders/{ORDER}/no-response-needed", json={"reason": "thanks"},
                          headers=auth(MARKET_TOKEN))
    assert r.status_code == 200, r.text
    assert r.json() == {"order_id": ORDER, "exempted": [later]}
    thread = (await client.get(f"/v1/orders/{ORDER}/messages", headers=auth(MARKET_TOKEN))).json()
    flags = {m["id"]: m["no_response_needed"] for m in thread["messages"]}
    assert flags[later] is True and flags[first] is False


async def test_party_limits_for_ops_only(client: httpx.AsyncClient, order: Any) -> None:
    r = await client.get(f"/v1/parties/{SELLER}/limits", headers=auth(OPS_TOKEN))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["party"] == SELLER and body["limits"]["per_party_hour"]["used"] == 0
    assert body["hits_today"] == {}
    r = await client.get(f"/v1/parties/{SELLER}/limits", headers=auth(MARKET_TOKEN))
    assert r.status_code == 403
    r = await client.get("/v1/parties/nobody@else.example/limits", headers=auth(OPS_TOKEN))
    assert r.status_code == 404
