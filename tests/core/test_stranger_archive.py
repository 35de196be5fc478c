"""Bounded cost of a stranger: a message refused before its sender is proven to be a
party is archived as its header section, the first ``archive.refused_keep`` bytes of its
body, its full size and the SHA-256 of the whole; the hash chain still verifies."""

from __future__ import annotations

import hashlib

from relay.settings import Settings
from relay.store.archive import SearchFilter, get_record, search, verify
from tests.helpers import BUYER, create_order, message, running_relay, send

KEEP = 1000


def _big(sender: str, to: str, size: int = 300_000) -> bytes:
    line = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.\n"
    return message(sender, to, body=line * (size // len(line))).as_bytes()


async def test_stranger_archive_is_bounded(make_settings, sink) -> None:
    settings = make_settings(
        delivery={"smarthost": f"127.0.0.1:{sink.port}"}, archive={"refused_keep": KEEP}
    )
    async with running_relay(settings, policy=None) as relay:
        order = await create_order(relay)
        stranger = _big("eve@evil.example", order.seller_alias)
        code, text = await send(relay.port, "eve@evil.example", [order.seller_alias], stranger)
        assert code == 550 and text.startswith("5.7.1"), text
        # An intake refusal (a doubled field) comes before any proof of the sender, too.
        doubled = b"Subject: again\r\n" + _big(BUYER, order.seller_alias)
        code, text = await send(relay.port, BUYER, [order.seller_alias], doubled)
        assert code == 554, text
        # The party's own message is kept in full.
        own = _big(BUYER, order.seller_alias)
        code, text = await send(relay.port, BUYER, [order.seller_alias], own)
        assert code == 250, text
        rows = await search(relay.engine, SearchFilter(order_id=order.id))
        records = [await get_record(relay.engine, r["id"]) for r in reversed(rows)]
        for record, full in zip(records[:2], (stranger, doubled), strict=True):
            assert record is not None and record["verdict"] == "refused"
            head, _, body = full.partition(b"\r\n\r\n")
            assert bytes(record["original"]) == head + b"\r\n\r\n" + body[:KEEP]
            assert record["size"] == len(full) and record["truncated"] is True
            assert record["sha256"] == hashlib.sha256(full).hexdigest()
        assert records[2] is not None and bytes(records[2]["original"]) == own
        assert records[2]["size"] == len(own) and records[2]["truncated"] is False
        assert (await verify(relay.engine)).ok


def test_refused_keep_default() -> None:
    assert Settings().archive.refused_keep == 65536


async def test_overlong_envelope_is_archived_not_tempfailed(make_settings, sink) -> None:
    """A MAIL FROM longer than the archive's column (320) must not make PostgreSQL refuse
    the record, which would answer 451 for ever: the record keeps a cut value."""
    settings = make_settings(delivery={"smarthost": f"127.0.0.1:{sink.port}"})
    async with running_relay(settings, policy=None) as relay:
        order = await create_order(relay)
        sender = "x" * 64 + "@" + ".".join(["d" * 60] * 6) + ".example"
        assert len(sender) > 320
        raw = message("eve@evil.example", order.seller_alias).as_bytes()
        code, text = await send(relay.port, sender, [order.seller_alias], raw)
        assert code == 550 and text.startswith("5.7.1"), text
        rows = await search(relay.engine, SearchFilter(order_id=order.id))
        assert len(rows) == 1 and len(rows[0]["mail_from"]) == 320
        assert (await verify(relay.engine)).ok
