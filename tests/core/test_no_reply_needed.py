"""No response needed (issue 13): a buyer message carrying the marketplace UI's header
``X-Marketplace-No-Reply-Needed: yes``, and an order marked with
``relay order no-reply-needed``, leave the 24-hour response report."""

from __future__ import annotations

import json
from typing import Any

from relay.store import choices, reports
from tests.helpers import (
    BUYER,
    ORDER,
    SELLER,
    create_order,
    message,
    relay_cli,
    running_relay,
    send,
    write_settings,
)


async def _send(relay: Any, sender: str, alias: str, **kw: Any) -> tuple[int, str]:
    return await send(relay.port, sender, [alias], message(sender, alias, **kw).as_bytes())


async def _seller_row(relay: Any) -> dict[str, Any]:
    data = await reports.response_times(relay.engine, days=7, seller=SELLER)
    return data["sellers"][0]


async def test_header_from_the_marketplace_ui_exempts_the_buyer_message(make_settings, sink):
    settings = make_settings(delivery={"smarthost": f"127.0.0.1:{sink.port}"})
    async with running_relay(settings, policy=None) as relay:
        order = await create_order(relay)
        code, text = await _send(
            relay, BUYER, order.seller_alias, subject="Thanks, all good",
            X_Marketplace_No_Reply_Needed="yes",
        )  # fmt: skip
        assert code == 250, text
        assert (await _send(relay, BUYER, order.seller_alias, subject="A question"))[0] == 250
        # the header on a seller's message exempts nothing (only buyer messages ask)
        code, _ = await _send(relay, SELLER, order.buyer_alias, subject="Re: x",
                              X_Marketplace_No_Reply_Needed="yes")
        assert code == 250
        row = await _seller_row(relay)
        assert row["exempted"] == 1 and row["buyer_messages"] == 1
        thread = await reports.thread(relay.engine, order.id)
        assert [m["no_response_needed"] for m in thread] == [True, False, False]


async def test_order_no_reply_needed_exempts_the_open_buyer_messages(db_url, sink, tmp_path):
    config = write_settings(
        tmp_path / "relay.toml",
        relay={"domain": "relay.example"},
        smtp={"listen": "127.0.0.1:0"},
        database={"url": db_url},
        delivery={"smarthost": f"127.0.0.1:{sink.port}"},
        auth={"mode": "off"},
    )
    from relay.settings import load_settings

    async with running_relay(load_settings(config), policy=None) as relay:
        order = await create_order(relay)
        assert (await _send(relay, BUYER, order.seller_alias, subject="first"))[0] == 250
        assert (await _send(relay, SELLER, order.buyer_alias, subject="Re: first"))[0] == 250
        assert (await _send(relay, BUYER, order.seller_alias, subject="thanks"))[0] == 250
        assert (await _send(relay, BUYER, order.seller_alias, subject="bye"))[0] == 250
        assert (await _seller_row(relay))["open_within_deadline"] == 2
    code, out, err = await relay_cli(
        config, "order", "no-reply-needed", ORDER, "--reason", "buyer said thanks", "--json"
    )
    assert code == 0, err
    assert len(json.loads(out)["exempted"]) == 2  # the answered first message stays counted
    async with running_relay(load_settings(config), policy=None) as relay:
        row = await _seller_row(relay)
        assert (row["exempted"], row["answered"], row["open_within_deadline"]) == (2, 1, 0)
        again = await choices.no_reply_needed(relay.engine, ORDER)
        assert again["exempted"] == []  # idempotent
    code, out, err = await relay_cli(config, "order", "no-reply-needed", "999-0000000-0000000")
    assert code == 1 and "no order" in err
