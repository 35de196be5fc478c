"""Delivery over real parts: aiosmtpd sinks, the loopback DNS server, SQLite/PostgreSQL.

Direct MX routing (preference, A fallback, null MX, NXDOMAIN), smarthost retries,
connection reuse, and workers running apart from the listener without ever delivering a
row twice. Failures and their notices are in test_bounces.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import email
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from relay.db import read_tx
from relay.delivery.journal import OutcomeJournal, encode, read_entries
from relay.delivery.route import Router, make_resolver
from relay.delivery.transport import Outcome, Pool
from relay.delivery.transport import send as send_one
from relay.service import Relay
from relay.settings import DeliverySection, DnsSection
from relay.store import archive, queue
from relay.store.tables import delivery_events, utcnow
from tests.delivery_support import (
    CountingSink,
    HangingUpSink,
    SlowSink,
    all_status,
    assert_notice,
    buyer_dns,
    buyer_writes,
    delivery_rows,
    direct,
    event_names,
    make_order,
    notices,
    refuse,
    smarthost,
    started,
    wait_until,
)
from tests.helpers import DOMAIN, SELLER, running_relay

# ---------------------------------------------------------------- direct MX


async def test_direct_mx_delivers_to_the_mx_host(make_settings, dns_server, sink) -> None:
    dns_server.add("shop.example", "MX", "10 mx1.shop.example.")
    dns_server.add("mx1.shop.example", "A", "127.0.0.1")
    async with running_relay(direct(make_settings, dns_server, sink), policy=None) as relay:
        order = await make_order(relay)
        await buyer_writes(relay, order)
        got = (await sink.wait_for(1))[0]
        assert got.rcpt_tos == [SELLER]
        assert got.mail_from.startswith("bounce+") and got.mail_from.endswith("@" + DOMAIN)
        rows = await wait_until(lambda: all_status(relay.engine, "delivered", 1))
        assert rows[0].attempts == 1
    assert ("shop.example.", "MX") in dns_server.queries


async def test_direct_mx_follows_preference_past_dead_hosts(
    lite_settings, dns_server, sink
) -> None:
    # Preference 5 has no address at all, 10 refuses connections, 20 is the sink.
    dns_server.add("shop.example", "MX", "20 mx-good.shop.example.")
    dns_server.add("shop.example", "MX", "5 mx-noaddr.shop.example.")
    dns_server.add("shop.example", "MX", "10 mx-dead.shop.example.")
    dns_server.add("mx-dead.shop.example", "A", "127.0.0.2")
    dns_server.add("mx-good.shop.example", "A", "127.0.0.1")
    async with running_relay(direct(lite_settings, dns_server, sink), policy=None) as relay:
        order = await make_order(relay)
        await buyer_writes(relay, order)
        got = (await sink.wait_for(1))[0]
        assert got.rcpt_tos == [SELLER]
        rows = await wait_until(lambda: all_status(relay.engine, "delivered", 1))
        assert rows[0].attempts == 1  # one attempt walked all three hosts
    looked_up = [name for name, rtype in dns_server.queries if rtype == "A"]
    assert looked_up.index("mx-noaddr.shop.example.") < looked_up.index("mx-dead.shop.example.")
    assert looked_up.index("mx-dead.shop.example.") < looked_up.index("mx-good.shop.example.")


async def test_direct_mx_falls_back_to_the_domain_address(lite_settings, dns_server, sink) -> None:
    dns_server.add("shop.example", "A", "127.0.0.1")  # no MX record at all
    async with running_relay(direct(lite_settings, dns_server, sink), policy=None) as relay:
        order = await make_order(relay)
        await buyer_writes(relay, order)
        assert (await sink.wait_for(1))[0].rcpt_tos == [SELLER]


async def test_null_mx_fails_at_once_with_a_notice(make_settings, dns_server, sink) -> None:
    dns_server.add("shop.example", "MX", "0 .")
    buyer_dns(dns_server)
    async with running_relay(direct(make_settings, dns_server, sink), policy=None) as relay:
        order = await make_order(relay)
        await buyer_writes(relay, order)
        got = (await sink.wait_for(1))[0]
        assert_notice(got, order)
        rows = await delivery_rows(relay.engine)
        assert rows[0].status == "failed" and rows[0].attempts == 1
        assert await event_names(relay.engine, rows[0].id) == ["failed"]
        await wait_until(lambda: all_status(relay.engine, None, 2, last="delivered"))


async def test_nxdomain_recipient_domain_fails(make_settings, dns_server, sink) -> None:
    buyer_dns(dns_server)
    settings = direct(make_settings, dns_server, sink)
    async with running_relay(settings, policy=None) as relay:
        order = await make_order(relay, seller="support@nowhere.example")
        await buyer_writes(relay, order)
        got = (await sink.wait_for(1))[0]
        assert_notice(got, order, secret="support@nowhere.example")
        rows = await delivery_rows(relay.engine)
        assert rows[0].status == "failed"
        assert rows[0].last_error == "recipient domain does not exist"


async def test_no_mx_and_no_address_fails(lite_settings, dns_server, sink) -> None:
    dns_server.add("shop.example", "TXT", "v=spf1 -all")  # the name exists, mail-less
    buyer_dns(dns_server)
    async with running_relay(direct(lite_settings, dns_server, sink), policy=None) as relay:
        order = await make_order(relay)
        await buyer_writes(relay, order)
        assert_notice((await sink.wait_for(1))[0], order)
        rows = await delivery_rows(relay.engine)
        assert rows[0].status == "failed"
        assert rows[0].last_error == "recipient domain has no mail server"


async def test_mx_hosts_without_address_defer(lite_settings, dns_server, sink) -> None:
    dns_server.add("shop.example", "MX", "10 gone.shop.example.")
    async with running_relay(direct(lite_settings, dns_server, sink), policy=None) as relay:
        order = await make_order(relay)
        await buyer_writes(relay, order)
        rows = await wait_until(lambda: all_status(relay.engine, "deferred", 1))
        assert rows[0].last_error == "no address for the mail exchangers"


async def test_dns_failure_defers_instead_of_failing(lite_settings, dns_server, sink) -> None:
    dns_server.fail("shop.example")
    async with running_relay(direct(lite_settings, dns_server, sink), policy=None) as relay:
        order = await make_order(relay)
        await buyer_writes(relay, order)
        rows = await wait_until(lambda: all_status(relay.engine, "deferred", 1))
        assert rows[0].last_error.startswith("DNS failure")
        with dns_server._lock:  # the DNS server recovers
            dns_server._fail.clear()
        dns_server.add("shop.example", "A", "127.0.0.1")
        assert (await sink.wait_for(1))[0].rcpt_tos == [SELLER]
        await wait_until(lambda: all_status(relay.engine, "delivered", 1))
        assert await event_names(relay.engine, rows[0].id) == ["deferred", "delivered"]


# ---------------------------------------------------------------- smarthost


async def test_4xx_defers_then_delivers_on_retry(make_settings, sink) -> None:
    sink.rcpt_reply = refuse(SELLER, "451 4.3.0 try later", times=1)
    async with running_relay(smarthost(make_settings, sink), policy=None) as relay:
        order = await make_order(relay)
        await buyer_writes(relay, order)
        got = (await sink.wait_for(1))[0]
        assert got.rcpt_tos == [SELLER]
        rows = await wait_until(lambda: all_status(relay.engine, "delivered", 1))
        assert rows[0].attempts == 2
        record = await archive.get_record(relay.engine, rows[0].archive_id)
        assert record is not None
        events = record["events"]
        assert [e["event"] for e in events] == ["deferred", "delivered"]
        assert events[0]["code"] == 451 and "try later" in events[0]["detail"]
        assert events[1]["code"] == 250
        assert await notices(relay.engine) == []


async def test_utf8_address_to_a_server_without_smtputf8_fails(sink) -> None:
    # Orders refuse such addresses today; the transport must still never loop on one.
    router = Router(
        DeliverySection(smarthost=f"127.0.0.1:{sink.port}"), make_resolver(DnsSection())
    )
    pool = Pool("relay.example", 5)
    try:
        data = b"Subject: x\r\n\r\nhi\r\n"
        outcome = await send_one(router, pool, "", "jörg@shop.example", data)
        assert (outcome.status, outcome.enhanced) == ("failed", "5.6.7")
        outcome = await send_one(router, pool, "", "plain@shop.example", data)
        assert outcome.status == "delivered"
        assert pool.opened == 1  # the refused transaction left the connection usable
    finally:
        await pool.close()


async def test_connection_refused_defers(lite_settings, sink) -> None:
    port = sink.port
    await sink.stop()
    settings = lite_settings(delivery={"smarthost": f"127.0.0.1:{port}"})
    async with running_relay(settings, policy=None) as relay:
        order = await make_order(relay)
        await buyer_writes(relay, order)
        rows = await wait_until(lambda: all_status(relay.engine, "deferred", 1))
        assert rows[0].last_error.startswith("connection failed")


# ---------------------------------------------------------------- connections, workers


async def test_connections_are_reused(make_settings) -> None:
    async with started(CountingSink()) as counting:
        settings = smarthost(make_settings, counting)
        async with running_relay(settings, worker=False, policy=None) as front:
            order = await make_order(front)
            for i in range(12):
                await buyer_writes(front, order, subject=f"burst {i}")
        # All twelve are due at once when the worker starts: a burst, not a trickle.
        async with running_relay(settings, smtp=False, policy=None):
            await counting.wait_for(12)
        assert 1 <= counting.connections < 12
        seen = counting.connections
        async with running_relay(settings, policy=None) as relay:
            for i in range(5):  # one at a time: the idle connection is taken again
                await buyer_writes(relay, order, subject=f"trickle {i}")
                await counting.wait_for(13 + i)
        assert counting.connections - seen == 1


async def test_worker_apart_from_the_listener(make_settings, sink) -> None:
    settings = smarthost(make_settings, sink)
    async with running_relay(settings, worker=False, policy=None) as front:
        order = await make_order(front)
        await buyer_writes(front, order)
        await asyncio.sleep(0.3)
        assert sink.messages == []
        (row,) = await delivery_rows(front.engine)
        assert row.status == "queued"
        async with running_relay(settings, smtp=False, policy=None) as back:
            assert back.server is None
            assert (await sink.wait_for(1))[0].rcpt_tos == [SELLER]
            await wait_until(lambda: all_status(front.engine, "delivered", 1))


async def test_two_workers_never_deliver_a_row_twice(make_settings, sink) -> None:
    settings = smarthost(make_settings, sink, batch=3, concurrency=4)
    count = 24
    async with (
        running_relay(settings, smtp=False, policy=None),
        running_relay(settings, smtp=False, policy=None),
        running_relay(settings, worker=False, policy=None) as front,
    ):
        order = await make_order(front)
        await asyncio.gather(
            *(buyer_writes(front, order, subject=f"message {i}") for i in range(count))
        )
        await sink.wait_for(count, timeout=20)
        rows = await wait_until(lambda: all_status(front.engine, "delivered", count))
    # Stopped: every send in flight has finished, so a duplicate would be in the sink.
    async with running_relay(settings, smtp=False, worker=False, policy=None) as front:
        assert len(sink.messages) == count
        subjects = sorted(email.message_from_bytes(m.data)["Subject"] for m in sink.messages)
        assert subjects == sorted(f"message {i}" for i in range(count))
        assert all(r.attempts == 1 for r in rows)
        async with read_tx(front.engine) as conn:
            workers = {r.claimed_by for r in rows}
            delivered = (
                await conn.execute(
                    sa.select(sa.func.count()).where(delivery_events.c.event == "delivered")
                )
            ).scalar_one()
        assert delivered == count and workers == {""}


async def test_a_connection_closed_by_the_server_costs_no_retry(lite_settings) -> None:
    async with started(HangingUpSink()) as hanging:
        async with running_relay(smarthost(lite_settings, hanging), policy=None) as relay:
            order = await make_order(relay)
            for i in range(3):
                await buyer_writes(relay, order, subject=f"m{i}")
                await hanging.wait_for(i + 1)
                await asyncio.sleep(0.1)
            rows = await wait_until(lambda: all_status(relay.engine, "delivered", 3))
            assert [r.attempts for r in rows] == [1, 1, 1]
        assert hanging.connections == 3


async def test_a_slow_send_keeps_its_lease(make_settings) -> None:
    async with started(SlowSink(delay=1.0)) as slow:  # more than twice the lease
        settings = smarthost(make_settings, slow, claim_lease="0.4s", poll_interval="0.1s")
        async with (
            running_relay(settings, smtp=False, policy=None),
            running_relay(settings, smtp=False, policy=None),
            running_relay(settings, worker=False, policy=None) as front,
        ):
            order = await make_order(front)
            await buyer_writes(front, order)
            rows = await wait_until(lambda: all_status(front.engine, "delivered", 1))
            assert rows[0].attempts == 1
        # Stopping let every in-flight send finish: a second claim would show up now.
        assert len(slow.messages) == 1


# ---------------------------------------------------------------- database outages


class ReadOnly:
    """Makes a SQLite engine refuse every write (``PRAGMA query_only`` on each checkout)
    while ``on``: the file is there and readable, but no outcome can be recorded, which
    is what a worker sees when its database goes away between a send and its record."""

    def __init__(self, engine: Any) -> None:
        self.on = False
        event.listen(engine.sync_engine, "checkout", self._checkout)

    def _checkout(self, dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA query_only={int(self.on)}")
        cur.close()


def journal_entries(directory: Path) -> list[dict[str, Any]]:
    out = []
    for path in directory.glob("*.jsonl"):
        with path.open() as fh:
            out.extend(read_entries(fh).values())
    return out


async def test_an_outcome_the_database_refuses_is_kept_not_sent_again(
    lite_settings, sink, tmp_path
) -> None:
    settings = smarthost(
        lite_settings, sink, claim_lease="0.4s", poll_interval="0.1s",
        journal_dir=str(tmp_path / "journal"),
    )  # fmt: skip
    async with running_relay(settings, policy=None) as relay:
        order = await make_order(relay)
        readonly = ReadOnly(relay.engine)
        # The first 250 goes out and the database goes away at once.
        sink.data_reply = lambda data: None if sink.messages else setattr(readonly, "on", True)
        await buyer_writes(relay, order)
        await sink.wait_for(1)
        await asyncio.sleep(5.0)  # longer than the old 4 s of retries, twelve leases
        (row,) = await delivery_rows(relay.engine)
        assert row.status == "sending" and len(sink.messages) == 1
        (kept,) = journal_entries(tmp_path / "journal")
        assert kept["item"]["id"] == row.id and kept["outcome"]["status"] == "delivered"
        readonly.on = False
        rows = await wait_until(lambda: all_status(relay.engine, "delivered", 1))
        assert rows[0].attempts == 1
        assert await event_names(relay.engine, row.id) == ["delivered"]
        assert journal_entries(tmp_path / "journal") == []
        await asyncio.sleep(1.0)  # three more leases: a second send would show now
    assert len(sink.messages) == 1


async def test_a_kept_outcome_survives_a_restart_in_the_journal(
    lite_settings, sink, tmp_path
) -> None:
    settings = smarthost(
        lite_settings, sink, claim_lease="0.4s", poll_interval="0.1s",
        journal_dir=str(tmp_path / "journal"),
    )  # fmt: skip
    relay = Relay(settings, policy=None)
    await relay.start()
    try:
        order = await make_order(relay)
        readonly = ReadOnly(relay.engine)
        sink.data_reply = lambda data: None if sink.messages else setattr(readonly, "on", True)
        await buyer_writes(relay, order)
        await sink.wait_for(1)
        await asyncio.sleep(0.5)
    finally:
        await relay.stop(grace=0.5)  # the database is still away: a clean stop
    (kept,) = journal_entries(tmp_path / "journal")
    assert kept["outcome"]["status"] == "delivered"
    # The restarted worker (a new engine: writable again) records it before it claims.
    async with running_relay(settings, smtp=False, policy=None) as again:
        rows = await wait_until(lambda: all_status(again.engine, "delivered", 1))
        assert rows[0].attempts == 1
        assert await event_names(again.engine, rows[0].id) == ["delivered"]
        await asyncio.sleep(1.5)  # the old lease ran out long ago: no second send
        assert journal_entries(tmp_path / "journal") == []
    assert len(sink.messages) == 1


async def test_a_claim_does_not_resend_what_the_recipient_accepted(make_settings, sink) -> None:
    """A worker that lost its claim still records the 250 as an event; the next claim
    sees it and marks the row delivered instead of handing it out again."""
    async with running_relay(smarthost(make_settings, sink), worker=False, policy=None) as relay:
        order = await make_order(relay)
        await buyer_writes(relay, order)
        lease = timedelta(seconds=0.2)
        (item,) = await queue.claim(relay.engine, "a", limit=5, lease=lease)
        late = dataclasses.replace(item, claimed_by="gone")  # its claim was lost
        changed = await queue.record(
            relay.engine, late, status="delivered", event="delivered", code=250, detail="ok"
        )
        assert changed is False
        await asyncio.sleep(0.3)
        assert await queue.claim(relay.engine, "b", limit=5, lease=lease) == []
        (row,) = await delivery_rows(relay.engine)
        assert (row.status, row.claimed_by) == ("delivered", "")
        assert await event_names(relay.engine, row.id) == ["delivered"]


async def test_a_lapsed_lease_waits_while_takeover_is_off(make_settings, sink) -> None:
    async with running_relay(smarthost(make_settings, sink), worker=False, policy=None) as relay:
        order = await make_order(relay)
        await buyer_writes(relay, order)
        lease = timedelta(seconds=0.2)
        (item,) = await queue.claim(relay.engine, "a", limit=5, lease=lease)
        await asyncio.sleep(0.3)
        assert await queue.claim(relay.engine, "b", limit=5, lease=lease, takeover=False) == []
        (again,) = await queue.claim(relay.engine, "b", limit=5, lease=lease)
        assert again.id == item.id and again.claimed_by == "b"


def test_the_journal_of_a_live_worker_is_not_adopted(tmp_path) -> None:
    item = queue.Claimed(1, 7, "bounce+x@relay.example", SELLER, 0, utcnow(), True, "w1")
    other = dataclasses.replace(item, id=2)
    ok = Outcome("delivered", 250, "2.0.0", "ok")
    first = OutcomeJournal(tmp_path, "w1")
    first.keep([encode(item, ok, utcnow()), encode(other, ok, utcnow())])
    first.done([1])
    second = OutcomeJournal(tmp_path, "w2")
    assert second.adopt() == []  # w1 still holds its file
    first.close()  # w1 stops with one outcome still unrecorded
    (adopted,) = second.adopt()
    assert adopted["item"]["id"] == 2
    assert [p.name for p in tmp_path.glob("*.jsonl")] == ["w2.jsonl"]
    second.done([2])
    second.close()
    assert list(tmp_path.glob("*.jsonl")) == []
