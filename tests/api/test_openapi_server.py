"""The OpenAPI document matches the routes; a real uvicorn server answers on loopback."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from starlette.routing import Route

from relay.api import create_app
from relay.api.server import check_tokens, make_server, serve_api
from relay.settings import SettingsError
from tests.api.conftest import MARKET_TOKEN, OPS_TOKEN
from tests.helpers import BUYER
from tests.helpers import test_settings as settings_for


def _openapi_path(path: str) -> str:
    return path.replace(":int}", "}")


async def test_openapi_lists_every_route_with_schemas(settings: Any, engine: Any) -> None:
    app = create_app(settings, engine)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as c:
        r = await c.get("/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    assert doc["openapi"].startswith("3.")
    from relay.api import choices, holds, marketplace, ops

    routes = [
        (_openapi_path(route.path), method.lower())
        for route in [*marketplace.router.routes, *ops.router.routes, *choices.router.routes,
                      *holds.router.routes]
        if isinstance(route, Route)
        for method in route.methods or ()
        if method != "HEAD"
    ]
    assert len(routes) >= 16
    schemas = doc["components"]["schemas"]
    for path, method in routes:
        op = doc["paths"][path][method]
        assert op["operationId"] and op["summary"]
        assert op["security"] == [{"bearer": []}]
        assert {"401", "403"} <= set(op["responses"])
        for response in op["responses"].values():
            for media in response["content"].values():
                ref = media["schema"].get("$ref")
                if ref:
                    assert ref.rsplit("/", 1)[1] in schemas
        for name in [p["name"] for p in op.get("parameters", []) if p["in"] == "path"]:
            assert "{" + name + "}" in path
        if "requestBody" in op:
            ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            assert ref.rsplit("/", 1)[1] in schemas
    documented = {(p, m) for p, ops in doc["paths"].items() for m in ops}
    assert documented == set(routes)
    for name in ("Error", "Order", "CreateOrder", "ArchivePage", "ResponseTimes", "SendTemplate"):
        assert name in schemas
    assert schemas["CreateOrder"]["required"] == ["order_id", "buyer", "seller"]
    search = doc["paths"]["/v1/archive"]["get"]
    assert {"text", "seller", "since", "before_id", "finding_kind"} <= {
        p["name"] for p in search["parameters"]
    }
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


async def test_real_uvicorn_server_on_loopback(settings: Any, engine: Any) -> None:
    stop = asyncio.Event()
    port: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(serve_api(settings, engine, stop, port.set_result))
    try:
        base = f"http://127.0.0.1:{await asyncio.wait_for(port, 10)}"
        async with httpx.AsyncClient(base_url=base) as c:
            order = {"order_id": "300-0000000-0000001", "buyer": BUYER, "seller": "s@y.example"}
            r = await c.post("/v1/orders", json=order)
            assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
            h = {"Authorization": f"Bearer {MARKET_TOKEN}"}
            r = await c.post("/v1/orders", json=order, headers=h)
            assert r.status_code == 201 and r.json()["seller_alias"].endswith("@relay.example")
            assert "server" not in r.headers
            r = await c.get("/v1/archive", headers={"Authorization": f"Bearer {OPS_TOKEN}"})
            assert r.status_code == 200 and r.json()["items"] == []
            assert (await c.get("/openapi.json")).status_code == 200
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    assert task.done() and task.exception() is None


@pytest.mark.parametrize(
    ("api", "key"),
    [
        ({}, "api.marketplace_tokens"),
        ({"ops_tokens": ["short"]}, "api.ops_tokens"),
        ({"marketplace_tokens": ["x" * 16], "listen": "nowhere:port"}, "api.listen"),
    ],
)
def test_server_refuses_bad_api_settings(api: dict, key: str) -> None:
    from pydantic import ValidationError

    with pytest.raises((SettingsError, ValidationError), match=key.replace(".", r"\.")):
        settings = settings_for("sqlite+aiosqlite:///:memory:", api=api)
        check_tokens(settings)
        make_server(settings, None)  # type: ignore[arg-type]


async def test_port_in_use_is_a_clear_error(settings: Any, engine: Any) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        api = settings.api.model_copy(update={"listen": f"127.0.0.1:{port}"})
        taken = settings.model_copy(update={"api": api})
        with pytest.raises(SettingsError, match="cannot listen"):
            await serve_api(taken, engine, asyncio.Event())


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_api_beside_the_relay_in_one_process(make_settings) -> None:
    """``relay api serve --with-relay``: SMTP relay and API on one loop; SIGTERM stops both."""
    import os
    import signal

    from relay.api.server import run_relay_and_api
    from relay.service import Relay

    port = _free_port()
    tokens = {"marketplace_tokens": [MARKET_TOKEN], "listen": f"127.0.0.1:{port}"}
    relay = Relay(make_settings(api=tokens), policy=None)
    task = asyncio.create_task(run_relay_and_api(relay))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as c:
            for _ in range(300):
                try:
                    r = await c.get(
                        "/v1/orders", headers={"Authorization": f"Bearer {MARKET_TOKEN}"}
                    )
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.02)
            assert r.status_code == 200 and relay.port > 0
    finally:
        if not task.done():  # its SIGTERM handler is installed: this stops it, not pytest
            os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(task, 15)
    assert relay.server is not None and not relay.server.is_serving()


async def test_relay_stops_again_when_the_api_cannot_listen(make_settings) -> None:
    import socket

    from relay.api.server import run_relay_and_api
    from relay.service import Relay

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        api = {"marketplace_tokens": [MARKET_TOKEN], "listen": f"127.0.0.1:{busy.getsockname()[1]}"}
        relay = Relay(make_settings(api=api), policy=None)
        with pytest.raises(SettingsError, match="cannot listen"):
            await asyncio.wait_for(run_relay_and_api(relay), 15)
    assert relay.server is not None and not relay.server.is_serving()
