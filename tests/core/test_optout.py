"""Buyer opt-out over real SMTP, on SQLite and PostgreSQL (issue 13): after an opt-out a
seller's proactive message is refused ``550 5.7.1`` naming it, while a reply to a recent
buyer message and a message the policy finds critical still go through; opting back in
undoes it; the CLI drives it."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from relay import metrics
from relay.store import choices
from relay.store.archive import SearchFilter, search
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

ORDER2 = "113-4829301-5520418"
SELLER2 = "sales@other-shop.example"
PROACTIVE = (
    "Hello Alice,\n\nCould you tell us which weekday suits you best for the sofa delivery? "
    "Our driver comes to your area on Tuesdays and Thursdays between nine and five.\n\n"
    "Kind regards,\nShop\n"
)
CRITICAL = (
    "Hello Alice,\n\nWe are sorry: your order has been cancelled because the sofa was "
    "damaged in our warehouse. The full amount goes back to your card within three days; "
    "you do not need to do anything.\n\nKind regards,\nShop\n"
)


async def _send(relay: Any, sender: str, alias: str, **kw: Any) -> tuple[int, str]:
    return await send(relay.port, sender, [alias], message(sender, alias, **kw).as_bytes())


def _msgid(data: bytes) -> str:
    m = re.search(rb"^Message-ID: (<[^>]+>)", data, re.M)
    assert m is not None
    return m.group(1).decode()


def _hits(limit: str) -> float:
    return metrics.REGISTRY.get_sample_value("relay_limit_hits_total", {"limit": limit}) or 0.0


async def test_opt_out_refuses_proactive_lets_reply_and_critical_through(make_settings, sink):
    settings = make_settings(delivery={"smarthost": f"127.0.0.1:{sink.port}"})
    before = _hits("opt_out_order")
    async with running_relay(settings) as relay:  # the shipped policy judges criticality
        order = await create_order(relay, buyer_name="Alice", seller_name="Shop")
        code, text = await _send(relay, BUYER, order.seller_alias, body="Hello, is the sofa "
                                 "still coming this week? I would like to plan my days.\n")
        assert code == 250, text
        asked = _msgid((await sink.wait_for(1))[0].data)
        await choices.order_opt_out(relay.engine, order.id, by="marketplace")

        code, text = await _send(relay, SELLER, order.buyer_alias, subject="Delivery day",
                                 body=PROACTIVE)
        assert (code, text.split()[0]) == (550, "5.7.1"), text
        assert "opted out" in text and "example" not in text
        code, text = await _send(relay, SELLER, order.buyer_alias, subject="Re: sofa",
                                 body="Hello Alice,\n\nYes, it arrives on Thursday afternoon "
                                 "between two and five.\n\nKind regards,\nShop\n",
                                 In_Reply_To=asked, References=asked)
        assert code == 250, text
        code, text = await _send(relay, SELLER, order.buyer_alias,
                                 subject="[Important] Your order has been cancelled",
                                 body=CRITICAL)
        assert code == 250, text
        await sink.wait_for(3)

        rows = await search(relay.engine, SearchFilter(order_id=order.id, verdict="refused"))
        assert len(rows) == 1 and "opted out" in rows[0]["reason"]
        critical = await search(relay.engine, SearchFilter(finding_kind="critical"))
        assert len(critical) == 1

        assert (await choices.order_opt_in(relay.engine, order.id))["removed"] is True
        code, text = await _send(relay, SELLER, order.buyer_alias, subject="Delivery day",
                                 body=PROACTIVE)
        assert code == 250, text
    assert _hits("opt_out_order") == before + 1


async def test_party_opt_out_covers_every_order_and_replies_only_within_window(
    make_settings, sink
):
    settings = make_settings(
        delivery={"smarthost": f"127.0.0.1:{sink.port}"}, limits={"reply_window": "2s"}
    )
    async with running_relay(settings, policy=None) as relay:
        one = await create_order(relay)
        two = await create_order(relay, order_id=ORDER2, seller=SELLER2)
        await choices.party_opt_out(relay.engine, BUYER)
        for seller, order in ((SELLER, one), (SELLER2, two)):
            code, text = await _send(relay, seller, order.buyer_alias, subject="hello")
            assert (code, text.split()[0]) == (550, "5.7.1"), text
            assert "opted out of seller messages" in text
        # a buyer still writes to sellers, and the seller's prompt reply reaches them
        assert (await _send(relay, BUYER, two.seller_alias))[0] == 250
        asked = _msgid((await sink.wait_for(1))[0].data)
        refs = {"In_Reply_To": asked, "References": asked}
        assert (await _send(relay, SELLER2, two.buyer_alias, subject="Re: q", **refs))[0] == 250
        await asyncio.sleep(2.5)  # past reply_window: answering it is proactive again
        code, text = await _send(relay, SELLER2, two.buyer_alias, subject="Re: q", **refs)
        assert (code, text.split()[0]) == (550, "5.7.1"), text
        # the buyer's reply to the seller is never an opt-out matter
        assert (await _send(relay, BUYER, one.seller_alias))[0] == 250
        assert (await choices.party_opt_in(relay.engine, BUYER))["removed"] is True
        assert (await _send(relay, SELLER, one.buyer_alias, subject="hello"))[0] == 250


async def test_opt_out_commands(db_url, sink, tmp_path):
    config = write_settings(
        tmp_path / "relay.toml",
        relay={"domain": "relay.example"},
        smtp={"listen": "127.0.0.1:0"},
        database={"url": db_url},
        delivery={"smarthost": f"127.0.0.1:{sink.port}"},
        auth={"mode": "off"},
    )
    code, out, err = await relay_cli(
        config, "order", "create", ORDER, "--buyer", BUYER, "--seller", SELLER, "--json"
    )
    assert code == 0, err
    buyer_alias = json.loads(out)["buyer_alias"]
    code, out, err = await relay_cli(config, "order", "opt-out", ORDER, "--by", "web", "--json")
    assert code == 0, err
    assert json.loads(out)["opted_out"] is True and json.loads(out)["by"] == "web"
    code, out, err = await relay_cli(config, "order", "opt-out", "999-0000000-0000000")
    assert code == 1 and "no order" in err
    code, out, err = await relay_cli(config, "party", "opt-out", BUYER)
    assert code == 0 and "opted out" in out, err
    code, out, err = await relay_cli(config, "party", "opt-out", "nobody@else.example")
    assert code == 1 and "no party" in err

    from relay.settings import load_settings

    async with running_relay(load_settings(config), policy=None) as relay:
        code, text = await _send(relay, SELLER, buyer_alias, subject="hello")
        assert code == 550 and "opted out" in text, text
    code, out, err = await relay_cli(config, "order", "opt-in", ORDER)
    assert code == 0, err
    async with running_relay(load_settings(config), policy=None) as relay:
        code, text = await _send(relay, SELLER, buyer_alias, subject="hello")
        assert code == 550 and "opted out of seller messages" in text, text  # party still
    code, out, err = await relay_cli(config, "party", "opt-in", BUYER)
    assert code == 0, err
    async with running_relay(load_settings(config), policy=None) as relay:
        code, text = await _send(relay, SELLER, buyer_alias, subject="hello")
        assert code == 250, text
