"""Rate limits over real SMTP, on SQLite and PostgreSQL (issue 13): each limit trips at
its number and not one message before, strangers never use up a party's quota, the
counters survive a restart, and a refusal is archived bounded with nothing queued."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import sqlalchemy as sa

from relay import metrics
from relay.ratelimits import party_view
from relay.store.archive import SearchFilter, get_record, search, verify
from relay.store.counters import rate_counters
from tests.helpers import (
    BUYER,
    SELLER,
    create_order,
    message,
    relay_cli,
    running_relay,
    send,
    write_settings,
)

OFF = {
    "per_party_hour": 0, "per_party_day": 0, "per_order_day": 0, "per_ip_minute": 0,
    "proactive_per_order": 0, "stranger_per_alias_hour": 0, "archive_bytes_per_party_day": 0,
}  # fmt: skip
ORDER2 = "113-4829301-5520418"
ORDER3 = "113-4829301-5520419"


def limits(**on: Any) -> dict[str, Any]:
    return {**OFF, **on}


async def clear_of_window_edge(seconds: int = 60, margin: float = 8.0) -> None:
    """Fixed windows start at multiples of ``seconds``: start a test well inside one."""
    left = seconds - time.time() % seconds
    if left < margin:
        await asyncio.sleep(left + 0.2)


async def _send(relay: Any, sender: str, alias: str, **kw: Any) -> tuple[int, str]:
    return await send(relay.port, sender, [alias], message(sender, alias, **kw).as_bytes())


def _hits(limit: str) -> float:
    return metrics.REGISTRY.get_sample_value("relay_limit_hits_total", {"limit": limit}) or 0.0


async def test_party_hour_limit_trips_at_its_number_across_orders(make_settings, sink) -> None:
    settings = make_settings(
        delivery={"smarthost": f"127.0.0.1:{sink.port}"}, limits=limits(per_party_hour=3)
    )
    await clear_of_window_edge(3600, 15)
    before = _hits("per_party_hour")
    async with running_relay(settings, policy=None) as relay:
        one = await create_order(relay)
        two = await create_order(relay, order_id=ORDER2)
        for alias in (one.seller_alias, two.seller_alias, one.seller_alias):
            code, text = await _send(relay, BUYER, alias)
            assert code == 250, text
        code, text = await _send(relay, BUYER, two.seller_alias, subject="one too many")
        assert (code, text.split()[0]) == (450, "4.7.1"), text
        assert "this hour" in text and "example" not in text
        # The other party is not touched by the buyer's quota.
        code, text = await _send(relay, SELLER, one.buyer_alias, body="Your parcel left today.\n")
        assert code == 250, text
        await sink.wait_for(4)
        await asyncio.sleep(0.5)
        assert len(sink.messages) == 4
        # The refusal is archived, bounded to its header section, with nothing queued.
        rows = await search(relay.engine, SearchFilter(verdict="tempfail"))
        assert len(rows) == 1 and rows[0]["reason"].startswith("4.7.1 ")
        assert rows[0]["deliveries"] == []
        record = await get_record(relay.engine, rows[0]["id"])
        assert record["truncated"] and record["delivered"] is None
        assert (await verify(relay.engine)).ok
        view = await party_view(relay.engine, settings, BUYER)
        assert view["limits"]["per_party_hour"] == {"used": 3, "limit": 3}
        assert view["hits_today"] == {"per_party_hour": 1}
    assert _hits("per_party_hour") == before + 1


async def test_order_day_and_ip_minute_limits(make_settings, sink) -> None:
    settings = make_settings(
        delivery={"smarthost": f"127.0.0.1:{sink.port}"},
        limits=limits(per_order_day=2, per_ip_minute=4),
    )
    await clear_of_window_edge(60, 15)
    async with running_relay(settings, policy=None) as relay:
        one = await create_order(relay)
        two = await create_order(relay, order_id=ORDER2)
        three = await create_order(relay, order_id=ORDER3)
        # per order, both directions together
        assert (await _send(relay, BUYER, one.seller_alias))[0] == 250
        assert (await _send(relay, SELLER, one.buyer_alias, body="It ships today.\n"))[0] == 250
        code, text = await _send(relay, BUYER, one.seller_alias)
        assert (code, text.split()[0]) == (450, "4.7.1") and "order" in text, text
        # per client address: 2 more here, the 5th from 127.0.0.1 this minute is refused
        assert (await _send(relay, BUYER, two.seller_alias))[0] == 250
        assert (await _send(relay, BUYER, three.seller_alias))[0] == 250
        code, text = await _send(relay, BUYER, three.seller_alias)
        assert (code, text.split()[0]) == (450, "4.7.1") and "your address" in text, text
        await sink.wait_for(4)


async def test_proactive_seller_messages_per_order(make_settings, sink) -> None:
    settings = make_settings(
        delivery={"smarthost": f"127.0.0.1:{sink.port}"}, limits=limits(proactive_per_order=2)
    )
    async with running_relay(settings, policy=None) as relay:
        order = await create_order(relay)
        for n in range(2):
            code, text = await _send(relay, SELLER, order.buyer_alias, subject=f"note {n}")
            assert code == 250, text
        code, text = await _send(relay, SELLER, order.buyer_alias, subject="note 3")
        assert (code, text.split()[0]) == (450, "4.7.1"), text
        # The buyer writes; the seller's reply to it is not proactive and goes through.
        assert (await _send(relay, BUYER, order.seller_alias))[0] == 250
        received = await sink.wait_for(3)
        relay_id = next(m for m in received if m.rcpt_tos == [SELLER]).data
        msgid = relay_id.split(b"Message-ID: ", 1)[1].split(b"\r\n", 1)[0].decode()
        for _ in range(2):  # replies do not count towards the proactive limit
            code, text = await _send(
                relay, SELLER, order.buyer_alias, subject="Re: question",
                In_Reply_To=msgid, References=msgid,
            )
            assert code == 250, text


async def test_archive_bytes_per_party_day(make_settings, sink) -> None:
    body = "Here are the measurements you asked for.\n" * 200  # ~8 KB, archived twice
    settings = make_settings(
        delivery={"smarthost": f"127.0.0.1:{sink.port}"},
        limits=limits(archive_bytes_per_party_day=40_000),
    )
    async with running_relay(settings, policy=None) as relay:
        order = await create_order(relay)
        sent = 0
        while True:
            code, text = await _send(relay, BUYER, order.seller_alias, body=body)
            if code != 250:
                break
            sent += 1
        assert (code, text.split()[0]) == (452, "4.3.1"), text
        # ~8.5 KB original + ~8.5 KB delivered a message: two fit in 40,000 bytes, not three
        assert sent == 2
        huge = "x" * 70 + "\n"
        code, text = await _send(relay, SELLER, order.buyer_alias, body=huge * 700)
        assert (code, text.split()[0]) == (552, "5.3.4"), text
        view = await party_view(relay.engine, settings, BUYER)
        used = view["limits"]["archive_bytes_per_party_day"]["used"]
        assert 30_000 < used <= 40_000


async def test_strangers_lock_an_alias_without_using_the_party_quota(make_settings, sink) -> None:
    settings = make_settings(
        delivery={"smarthost": f"127.0.0.1:{sink.port}"},
        limits=limits(stranger_per_alias_hour=2, per_party_hour=1),
    )
    await clear_of_window_edge(3600, 15)
    before = _hits("stranger_per_alias_hour")
    async with running_relay(settings, policy=None) as relay:
        order = await create_order(relay)
        for _n in range(2):  # refused at DATA by the sender check, and counted
            code, text = await _send(relay, "eve@evil.example", order.seller_alias)
            assert (code, text.split()[0]) == (550, "5.7.1"), text
        # the third stranger is answered at RCPT, before any DATA
        code, text = await _send(relay, "eve@evil.example", order.seller_alias)
        assert (code, text.split()[0]) == (450, "4.7.1"), text
        assert "unknown senders" in text
        code, text = await _send(relay, "bounce@other.example", order.seller_alias)
        assert code == 450, text
        # the real buyer (aligned envelope) is never locked out, and its quota is whole
        code, text = await _send(relay, BUYER, order.seller_alias)
        assert code == 250, text
        code, text = await send(
            relay.port, "bounces@mail.buyer.example", [order.seller_alias],
            message(BUYER, order.seller_alias).as_bytes(),
        )  # fmt: skip
        assert (code, text.split()[0]) == (450, "4.7.1") and "this hour" in text, text
        # the other alias of the order is not locked
        code, text = await _send(relay, "eve@evil.example", order.buyer_alias)
        assert code == 550, text
        rows = await search(relay.engine, SearchFilter(order_id=order.id))
        assert sum(r["reason"] == "stranger" for r in rows) == 3
        view = await party_view(relay.engine, settings, SELLER)
        assert list(view["strangers_this_hour"].values()) == [2]
    assert _hits("stranger_per_alias_hour") == before + 2


async def test_counters_survive_a_restart(make_settings, sink) -> None:
    settings = make_settings(
        delivery={"smarthost": f"127.0.0.1:{sink.port}"}, limits=limits(per_party_day=2)
    )
    await clear_of_window_edge(86400, 20)
    async with running_relay(settings, policy=None) as relay:
        order = await create_order(relay)
        for _ in range(2):
            assert (await _send(relay, BUYER, order.seller_alias))[0] == 250
    async with running_relay(settings, policy=None) as relay:
        code, text = await _send(relay, BUYER, order.seller_alias)
        assert (code, text.split()[0]) == (450, "4.7.1") and "today" in text, text


async def test_limits_off_count_nothing(make_settings, sink) -> None:
    settings = make_settings(delivery={"smarthost": f"127.0.0.1:{sink.port}"}, limits=OFF)
    async with running_relay(settings, policy=None) as relay:
        order = await create_order(relay)
        for _ in range(3):
            assert (await _send(relay, BUYER, order.seller_alias))[0] == 250
        assert (await _send(relay, "eve@evil.example", order.seller_alias))[0] == 550
        async with relay.engine.connect() as conn:
            count = (await conn.execute(sa.select(sa.func.count()).select_from(rate_counters)))
            assert count.scalar() == 0


async def test_limits_show_command(db_url, sink, tmp_path) -> None:
    config = write_settings(
        tmp_path / "relay.toml",
        relay={"domain": "relay.example"},
        smtp={"listen": "127.0.0.1:0"},
        database={"url": db_url},
        delivery={"smarthost": f"127.0.0.1:{sink.port}"},
        auth={"mode": "off"},
        limits=limits(per_party_hour=1),
    )
    from relay.settings import load_settings

    settings = load_settings(config)
    async with running_relay(settings, policy=None) as relay:
        order = await create_order(relay)
        assert (await _send(relay, BUYER, order.seller_alias))[0] == 250
        assert (await _send(relay, BUYER, order.seller_alias))[0] == 450
    code, out, err = await relay_cli(config, "limits", "show", BUYER)
    assert code == 0, err
    assert "per_party_hour" in out and "1 of 1" in out and "per_party_hour 1" in out
    code, out, err = await relay_cli(config, "limits", "show", "nobody@else.example")
    assert code == 1 and "no party" in err


async def test_old_windows_are_pruned_and_lifetime_counters_kept(db_url) -> None:
    from datetime import UTC, datetime, timedelta

    from relay.db import create_engine, write_tx
    from relay.db.migrate import upgrade
    from relay.ratelimits import prune
    from relay.store import counters

    engine = create_engine(db_url)
    try:
        await upgrade(engine)
        now = datetime(2026, 12, 1, 12, 30, tzinfo=UTC)

        def at(ago: timedelta, seconds: int) -> int:
            return counters.window_start(now - ago, seconds)

        rows = {
            ("ip:m", "127.0.0.1", at(timedelta(minutes=5), 60)): 1,  # kept
            ("ip:m", "127.0.0.1", at(timedelta(hours=2), 60)): 1,  # gone
            ("party:h", "7", at(timedelta(hours=30), 3600)): 1,  # kept
            ("party:d", "7", at(timedelta(days=3), 86400)): 1,  # gone
            ("proactive", "113-4829301-5520417", counters.LIFETIME): 4,  # kept for good
        }
        async with write_tx(engine) as conn:
            await counters.bump(conn, rows)
            assert await prune(conn, now) == 2
            left = await counters.read(conn, rows)
        assert {k for k, v in left.items() if v} == {
            k for k in rows if k[2] in (at(timedelta(minutes=5), 60), at(timedelta(hours=30), 3600),
                                        counters.LIFETIME)
        }
    finally:
        await engine.dispose()
