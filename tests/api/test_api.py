"""The HTTP API driven through httpx's ASGI transport: scopes, errors, orders, archive."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from relay.api import create_app
from tests.api.conftest import BOTH_TOKEN, MARKET_TOKEN, OPS_TOKEN
from tests.helpers import BUYER, DOMAIN, ORDER, SELLER

NEW = {
    "order_id": "114-0000001-0000002",
    "buyer": "Bob@Buyer.example",
    "seller": "shop@seller.example",
    "buyer_locale": "fr-FR",
}


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def client(settings: Any, engine: Any) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, engine)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as c:
        yield c


def assert_error(r: httpx.Response, status: int, code: str, field: str | None = None) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"status", "code", "message", "field"}
    assert body["error"]["status"] == status and body["error"]["code"] == code
    assert body["error"]["field"] == field
    assert body["error"]["message"]


async def test_tokens_and_scopes(client: httpx.AsyncClient, order: Any) -> None:
    for headers in (
        {},
        auth("wrong-token-000000"),
        {"Authorization": MARKET_TOKEN},
        {"Authorization": "Basic " + MARKET_TOKEN},
    ):
        r = await client.get(f"/v1/orders/{ORDER}", headers=headers)
        assert_error(r, 401, "unauthorized")
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert ORDER not in r.text and BUYER not in r.text
    # Unauthenticated probes learn nothing: unknown orders and unknown paths are 401 too.
    assert_error(await client.get("/v1/orders/999-9999999-9999999"), 401, "unauthorized")
    assert_error(await client.get("/v1/nothing-here"), 401, "unauthorized")
    assert_error(await client.delete(f"/v1/orders/{ORDER}"), 401, "unauthorized")
    assert_error(await client.get("/v1/archive", headers=auth(MARKET_TOKEN)), 403, "forbidden")
    r = await client.get(f"/v1/orders/{ORDER}", headers=auth(OPS_TOKEN))
    assert_error(r, 403, "forbidden")
    # Scope checks come before input checks: a bad body with the wrong scope is still 403.
    assert_error(
        await client.post("/v1/orders", headers=auth(OPS_TOKEN), content=b"{"), 403, "forbidden"
    )
    assert (await client.get(f"/v1/orders/{ORDER}", headers=auth(BOTH_TOKEN))).status_code == 200
    assert (await client.get("/v1/archive", headers=auth(BOTH_TOKEN))).status_code == 200
    assert_error(await client.get("/v1/nothing", headers=auth(OPS_TOKEN)), 404, "not_found")
    r = await client.delete(f"/v1/orders/{ORDER}", headers=auth(MARKET_TOKEN))
    assert_error(r, 405, "method_not_allowed")


async def test_order_lifecycle(client: httpx.AsyncClient) -> None:
    h = auth(MARKET_TOKEN)
    r = await client.post("/v1/orders", json=NEW, headers=h)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["buyer"] == "bob@buyer.example" and created["status"] == "open"
    for key in ("buyer_alias", "seller_alias"):
        local, _, domain = created[key].partition("@")
        assert domain == DOMAIN and len(local) >= 20
    assert created["buyer_alias"] != created["seller_alias"]
    assert_error(await client.post("/v1/orders", json=NEW, headers=h), 409, "conflict", "order_id")
    path = f"/v1/orders/{NEW['order_id']}"
    assert (await client.get(path, headers=h)).json() == created
    listed = await client.get("/v1/orders", params={"party": "BOB@buyer.example"}, headers=h)
    assert listed.json() == {"orders": [created]}
    r = await client.get("/v1/orders", params={"status": "closed"}, headers=h)
    assert r.json() == {"orders": []}
    assert_error(
        await client.get("/v1/orders", params={"status": "x"}, headers=h), 422, "invalid", "status"
    )
    closed = (await client.post(f"{path}/close", headers=h)).json()
    assert closed["status"] == "closed" and closed["closed_at"]
    reopened = (await client.post(f"{path}/reopen", headers=h)).json()
    assert reopened["status"] == "open" and reopened["closed_at"] is None
    assert_error(await client.get("/v1/orders/111-1111111-1111111", headers=h), 404, "not_found")
    assert_error(
        await client.post("/v1/orders/111-1111111-1111111/close", headers=h), 404, "not_found"
    )


BAD_FIELDS = [
    ({"order_id": "12-3"}, "order_id"),
    ({"buyer": "not-an-address"}, "buyer"),
    ({"seller": None}, "seller"),
    ({"buyer_locale": "de_DE!"}, "buyer_locale"),
    ({"delivered_at": "yesterday"}, "delivered_at"),
    ({"colour": "red"}, "colour"),
]


async def test_bad_input_names_the_field(client: httpx.AsyncClient) -> None:
    for change, field in BAD_FIELDS:
        body = {**NEW, **change}
        r = await client.post("/v1/orders", json=body, headers=auth(MARKET_TOKEN))
        assert_error(r, 422, "invalid", field)
        assert field in r.json()["error"]["message"]


async def test_bad_bodies(client: httpx.AsyncClient) -> None:
    h = auth(MARKET_TOKEN)
    missing = {k: v for k, v in NEW.items() if k != "buyer"}
    assert_error(await client.post("/v1/orders", json=missing, headers=h), 422, "invalid", "buyer")
    assert_error(await client.post("/v1/orders", content=b"{oops", headers=h), 422, "invalid")
    assert_error(await client.post("/v1/orders", json=[1], headers=h), 422, "invalid")
    same = {**NEW, "seller": NEW["buyer"]}
    assert_error(await client.post("/v1/orders", json=same, headers=h), 409, "conflict", "seller")
    huge = {**NEW, "buyer_name": "x" * 300_000}
    assert_error(await client.post("/v1/orders", json=huge, headers=h), 413, "too_large")
    r = await client.get("/v1/orders", params={"a": "1"}, headers=h)
    assert_error(r, 422, "invalid", "a")
    r = await client.get("/v1/orders/x", headers=h)
    assert_error(r, 422, "invalid", "order_id")


async def test_senders(client: httpx.AsyncClient, order: Any) -> None:
    h = auth(MARKET_TOKEN)
    path = f"/v1/parties/{SELLER}/senders"
    r = await client.post(path, json={"sender": "Orders@Shop.example"}, headers=h)
    assert r.status_code == 201 and r.json() == {
        "party": SELLER,
        "senders": ["orders@shop.example"],
    }
    assert (await client.get(path, headers=h)).json()["senders"] == ["orders@shop.example"]
    assert_error(
        await client.post(path, json={"sender": "nope"}, headers=h), 422, "invalid", "sender"
    )
    r = await client.post(
        "/v1/parties/ghost@x.example/senders", json={"sender": "a@b.example"}, headers=h
    )
    assert_error(r, 404, "not_found")
    r = await client.delete(f"{path}/orders@shop.example", headers=h)
    assert r.status_code == 200 and r.json()["senders"] == []
    assert_error(await client.delete(f"{path}/orders@shop.example", headers=h), 404, "not_found")


async def test_archive_search_and_eml(client: httpx.AsyncClient, order: Any, archive_msg) -> None:
    h = auth(OPS_TOKEN)
    ids = [
        await archive_msg(order, "buyer-to-seller", f"Refund {i}", "where is my refund\n")
        for i in range(3)
    ]
    refused = await archive_msg(order, "seller-to-buyer", "x", "call me\n", verdict="reject")
    r = await client.get(
        "/v1/archive", params={"text": "refund", "seller": SELLER, "limit": 2}, headers=h
    )
    page = r.json()
    assert [i["id"] for i in page["items"]] == ids[:0:-1] and page["next_before_id"] == ids[1]
    r = await client.get(
        "/v1/archive",
        params={"text": "refund", "limit": 2, "before_id": page["next_before_id"]},
        headers=h,
    )
    assert [i["id"] for i in r.json()["items"]] == [ids[0]] and r.json()["next_before_id"] is None
    item = page["items"][0]
    assert item["mail_from"] == BUYER and item["rcpt"] == SELLER  # ops see the archive as is
    for params, field in (
        ({"limit": "0"}, "limit"),
        ({"since": "soon"}, "since"),
        ({"verdict": "maybe"}, "verdict"),
        ({"seller": "x"}, "seller"),
        ({"sort": "asc"}, "sort"),
    ):
        assert_error(
            await client.get("/v1/archive", params=params, headers=h), 422, "invalid", field
        )
    # Schema-valid text with no searchable word matches nothing (not a 422).
    r = await client.get("/v1/archive", params={"text": " * "}, headers=h)
    assert r.status_code == 200 and r.json()["items"] == []
    for big in (2**63, 10**30):
        r = await client.get(f"/v1/archive/{big}", headers=h)
        assert_error(r, 422, "invalid", "archive_id")
    r = await client.get(f"/v1/archive/{2**63 - 1}", headers=h)
    assert_error(r, 404, "not_found")
    r = await client.put("/v1/archive", headers=h)
    assert r.status_code == 405 and r.headers["allow"] == "GET"
    r = await client.put(f"/v1/parties/{SELLER}/senders", headers=h)
    assert r.status_code == 405 and r.headers["allow"] == "GET, POST"
    rec = (await client.get(f"/v1/archive/{ids[0]}", headers=h)).json()
    assert rec["id"] == ids[0] and rec["original_bytes"] > 0 and rec["events"] == []
    r = await client.get(f"/v1/archive/{ids[0]}/original.eml", headers=h)
    assert r.status_code == 200 and r.headers["content-type"] == "message/rfc822"
    assert b"Subject: Refund 0" in r.content
    assert (await client.get(f"/v1/archive/{ids[0]}/delivered.eml", headers=h)).status_code == 200
    r = await client.get(f"/v1/archive/{refused}/delivered.eml", headers=h)
    assert_error(r, 404, "not_found")
    assert_error(await client.get("/v1/archive/999999", headers=h), 404, "not_found")
    assert_error(await client.get("/v1/archive/999999/original.eml", headers=h), 404, "not_found")


async def test_thread_view_hides_addresses(
    client: httpx.AsyncClient, order: Any, archive_msg
) -> None:
    first = await archive_msg(order, "buyer-to-seller", "Hello", "mail me at alice@buyer.example\n")
    await archive_msg(order, "seller-to-buyer", "Call +49 30 1234567", "x\n", verdict="redact")
    r = await client.get(f"/v1/orders/{ORDER}/messages", headers=auth(MARKET_TOKEN))
    assert r.status_code == 200
    msgs = r.json()["messages"]
    assert msgs[0]["id"] == first and msgs[1]["subject"] == ""
    for forbidden in (BUYER, SELLER, "1234567", order.buyer_alias, order.seller_alias):
        assert forbidden not in r.text


async def test_chunked_body_over_the_limit(client: httpx.AsyncClient) -> None:
    async def chunks():  # no Content-Length: the server must count as it reads
        for _ in range(40):
            yield b"x" * 10_000

    r = await client.post("/v1/orders", content=chunks(), headers=auth(MARKET_TOKEN))
    assert_error(r, 413, "too_large")


async def test_database_down_is_503_without_detail(monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy.exc import OperationalError

    from relay.store import orders
    from tests.helpers import test_settings as settings_for

    async def down(*args: Any, **kwargs: Any) -> None:
        raise OperationalError("SELECT secret", {}, Exception("connection refused to db:5432"))

    async def bug(*args: Any, **kwargs: Any) -> None:
        raise KeyError("internal detail")

    settings = settings_for(
        "sqlite+aiosqlite:///:memory:", api={"marketplace_tokens": [MARKET_TOKEN]}
    )
    app = create_app(settings, None)  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as c:
        monkeypatch.setattr(orders, "get_order", down)
        r = await c.get(f"/v1/orders/{ORDER}", headers=auth(MARKET_TOKEN))
        assert_error(r, 503, "unavailable")
        assert "secret" not in r.text and "5432" not in r.text
        monkeypatch.setattr(orders, "get_order", bug)
        r = await c.get(f"/v1/orders/{ORDER}", headers=auth(MARKET_TOKEN))
        assert_error(r, 500, "internal")
        assert "detail" not in r.json()["error"]["message"]
