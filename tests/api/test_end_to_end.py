"""The issue's "done when": a marketplace script creates an order over the API, the parties
exchange mail over SMTP, and ops find the thread by text and by order (CLI and API)."""

from __future__ import annotations

import json
import mailbox
from pathlib import Path

import httpx

from relay.api import create_app
from tests.api.conftest import MARKET_TOKEN, OPS_TOKEN, run_cli
from tests.helpers import BUYER, ORDER, SELLER, message, running_relay, send

ORDER_BODY = {"order_id": ORDER, "buyer": BUYER, "seller": SELLER, "buyer_locale": "de-DE",
              "buyer_name": "Alice", "seller_name": "Shop GmbH"}  # fmt: skip


async def test_marketplace_to_ops(make_settings, sink, tmp_path: Path) -> None:
    settings = make_settings(
        delivery={"smarthost": f"127.0.0.1:{sink.port}"},
        api={"marketplace_tokens": [MARKET_TOKEN], "ops_tokens": [OPS_TOKEN]},
    )
    async with running_relay(settings) as relay:
        app = create_app(settings, relay.engine)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as api:
            market = {"Authorization": f"Bearer {MARKET_TOKEN}"}
            ops = {"Authorization": f"Bearer {OPS_TOKEN}"}
            r = await api.post("/v1/orders", json=ORDER_BODY, headers=market)
            order = r.json()
            ask = message(
                BUYER,
                order["seller_alias"],
                "Rückfrage",
                "Wann bekomme ich meine Erstattung für den Mantel?\n",
            )
            code, text = await send(relay.port, BUYER, [order["seller_alias"]], ask.as_bytes())
            assert code == 250, text
            reply = message(
                SELLER,
                order["buyer_alias"],
                "Re: Rückfrage",
                "Wir haben die Erstattung heute veranlasst.\n",
            )
            code, text = await send(relay.port, SELLER, [order["buyer_alias"]], reply.as_bytes())
            assert code == 250, text
            await sink.wait_for(2)

            r = await api.get("/v1/archive", params={"text": "erstattung mantel"}, headers=ops)
            hits = r.json()["items"]
            assert len(hits) == 1 and hits[0]["direction"] == "buyer-to-seller"
            r = await api.get("/v1/archive", params={"order_id": ORDER}, headers=ops)
            thread = r.json()["items"]
            assert [i["direction"] for i in thread] == ["seller-to-buyer", "buyer-to-seller"]
            r = await api.get(f"/v1/archive/{thread[0]['id']}/delivered.eml", headers=ops)
            assert order["seller_alias"].encode() in r.content and b"shop.example" not in r.content

        out = await run_cli(
            settings,
            "archive",
            "search",
            "--text",
            "erstattung",
            "--seller",
            SELLER,
            "--since",
            "2026-01-01",
            "--json",
        )
        assert out.exit_code == 0, out.output
        assert {r["id"] for r in json.loads(out.stdout)} == {i["id"] for i in thread}
        out = await run_cli(settings, "archive", "search", "--text", "***")
        assert out.exit_code == 2 and "--text" in out.output

        box = tmp_path / "thread.mbox"
        out = await run_cli(settings, "archive", "export", "--order", ORDER, "-o", str(box))
        assert out.exit_code == 0, out.output
        subjects = [str(m["Subject"]) for m in mailbox.mbox(str(box))]
        assert len(subjects) == 2 and "Re:" in subjects[1]
        emls = tmp_path / "emls"
        out = await run_cli(
            settings,
            "archive",
            "export",
            "--order",
            ORDER,
            "--format",
            "eml-dir",
            "--part",
            "delivered",
            "-o",
            str(emls),
        )
        assert out.exit_code == 0, out.output
        names = sorted(p.name for p in emls.iterdir())
        assert len(names) == 2 and names[0].endswith("-buyer-to-seller.eml")
        assert b"alice@buyer.example" not in (emls / names[0]).read_bytes().lower()
        out = await run_cli(settings, "archive", "export", "--order", "999-9999999-9999999")
        assert out.exit_code == 1 and "no archived" in out.output
