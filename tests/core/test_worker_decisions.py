"""The worker's decisions (record, retry, give up, bounce) driven through MockTransport
against a real database: the outcomes are scripted, everything else is the real queue,
archive and hash chain. The SMTP transport itself is tested over loopback in
test_delivery_transport.py and test_delivery.py."""

from __future__ import annotations

import asyncio
import email
import email.policy
from typing import Any

from relay.delivery.transport import Envelope, MockTransport, Outcome
from relay.delivery.worker import DeliveryWorker
from relay.store import archive
from tests.delivery_support import (
    all_status,
    buyer_writes,
    delivery_rows,
    event_names,
    make_order,
    notices,
    wait_until,
)
from tests.helpers import BUYER, SELLER, running_relay

DELIVERED = Outcome("delivered", 250, "2.0.0", "accepted by mock")
LATER = Outcome("deferred", 451, "4.7.1", "451 4.7.1 greylisted")
REFUSED = Outcome("failed", 550, "5.1.1", f"550 5.1.1 <{SELLER}> unknown user")


def worker_with(settings: Any, relay: Any, transport: MockTransport) -> DeliveryWorker:
    return DeliveryWorker(settings, relay.engine, transport)


async def test_a_deferral_is_retried_on_schedule_then_delivered(make_settings) -> None:
    settings = make_settings(delivery={"retry": ["1s"]})
    mock = MockTransport([LATER, DELIVERED])
    async with running_relay(settings, worker=False, policy=None) as relay:
        order = await make_order(relay)
        await buyer_writes(relay, order)
        worker = worker_with(settings, relay, mock)
        await worker.drain()
        (row,) = await delivery_rows(relay.engine)
        assert (row.status, row.attempts, row.last_code) == ("deferred", 1, 451)
        await worker.drain()  # not due yet: nothing is sent
        assert len(mock.sent) == 1
        await asyncio.sleep(1.1)
        await worker.drain()
        (row,) = await delivery_rows(relay.engine)
        assert (row.status, row.attempts) == ("delivered", 2)
        assert await event_names(relay.engine, row.id) == ["deferred", "delivered"]
        (first, data), (second, again) = mock.sent
        assert first == second and data == again  # the same envelope and bytes each try
        assert first.rcpt == SELLER and first.mail_from.endswith("@relay.example")
        assert BUYER.encode() not in data  # the seller sees the buyer's alias only
        assert await notices(relay.engine) == []


async def test_a_refusal_fails_once_and_bounces_a_private_notice(make_settings) -> None:
    settings = make_settings()
    mock = MockTransport(lambda env, data: REFUSED if env.rcpt == SELLER else DELIVERED)
    async with running_relay(settings, worker=False, policy=None) as relay:
        order = await make_order(relay)
        await buyer_writes(relay, order)
        worker = worker_with(settings, relay, mock)
        await worker.drain()
        rows = await delivery_rows(relay.engine)
        assert (rows[0].status, rows[0].attempts, rows[0].last_code) == ("failed", 1, 550)
        assert await event_names(relay.engine, rows[0].id) == ["failed"]
        assert len(await notices(relay.engine)) == 1
        await worker.drain()  # the notice is a delivery of its own, to the buyer
        envelopes = [env for env, _ in mock.sent]
        assert envelopes[-1] == Envelope("", BUYER)  # null sender: no notice about it
        notice = mock.sent[-1][1]
        parsed = email.message_from_bytes(notice, policy=email.policy.default)
        assert parsed["Auto-Submitted"] == "auto-replied"
        assert SELLER.encode() not in notice and b"shop.example" not in notice
        assert order.seller_alias.encode() in notice
        assert [r.status for r in await delivery_rows(relay.engine)] == ["failed", "delivered"]
        assert (await archive.verify(relay.engine)).ok  # the notice is on the chain


async def test_a_deferral_past_give_up_after_expires_and_bounces(make_settings) -> None:
    settings = make_settings(delivery={"give_up_after": "0s"})
    mock = MockTransport([LATER])
    async with running_relay(settings, worker=False, policy=None) as relay:
        await buyer_writes(relay, await make_order(relay))
        await worker_with(settings, relay, mock).drain()
        (row, *_) = await delivery_rows(relay.engine)
        assert row.status == "failed" and row.last_error.startswith("expired: 451")
        assert await event_names(relay.engine, row.id) == ["expired"]
        assert len(await notices(relay.engine)) == 1


async def test_a_failed_notice_bounces_nothing(make_settings) -> None:
    """Never a notice about a notice: its failure is recorded and that is all."""
    settings = make_settings()
    mock = MockTransport([REFUSED])
    async with running_relay(settings, worker=False, policy=None) as relay:
        await buyer_writes(relay, await make_order(relay))
        worker = worker_with(settings, relay, mock)
        await worker.drain()
        await worker.drain()
        assert [r.status for r in await delivery_rows(relay.engine)] == ["failed", "failed"]
        assert len(mock.sent) == 2 and len(await notices(relay.engine)) == 1


async def test_a_transport_bug_defers_and_the_worker_closes_its_transport(make_settings) -> None:
    settings = make_settings()
    mock = MockTransport([RuntimeError("a bug in the transport")])
    async with running_relay(settings, worker=False, policy=None) as relay:
        await buyer_writes(relay, await make_order(relay))
        worker = worker_with(settings, relay, mock)
        task = asyncio.create_task(worker.run())
        try:
            (row,) = await wait_until(lambda: all_status(relay.engine, "deferred", 1))
            assert (row.last_code, row.last_error) == (None, "internal error")
        finally:
            await worker.stop(grace=5)
            task.cancel()
        assert mock.closed and len(mock.sent) == 1
