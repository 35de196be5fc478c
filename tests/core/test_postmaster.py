"""postmaster@ and abuse@ the relay domain (RFC 5321 4.5.1, RFC 2142): accepted from any
sender, archived, and delivered to the ops address only; never a way to a party."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from relay.db import read_tx
from relay.settings import SettingsError, load_settings
from relay.store.tables import archive, deliveries
from tests.core.test_smtp import RawClient
from tests.helpers import BUYER, DOMAIN, SELLER, create_order, message, running_relay, send

OPS = "ops@marketplace-ops.example"
STRANGER = "someone@anywhere.example"


async def ops_records(engine: Any) -> list[Any]:
    async with read_tx(engine) as conn:
        q = sa.select(archive, deliveries.c.rcpt.label("queued_for")).outerjoin(
            deliveries, deliveries.c.archive_id == archive.c.id
        )
        return list((await conn.execute(q.where(archive.c.kind == "ops"))).all())


@pytest.fixture
def ops_settings(make_settings, sink):  # type: ignore[no-untyped-def]
    return make_settings(
        relay={"postmaster": OPS}, delivery={"smarthost": f"127.0.0.1:{sink.port}"}
    )


@pytest.mark.parametrize(
    "rcpt",
    [f"postmaster@{DOMAIN}", f"PostMaster@{DOMAIN.upper()}", f"abuse@{DOMAIN}", "Postmaster"],
)
async def test_postmaster_and_abuse_reach_the_ops_address(ops_settings, sink, rcpt: str) -> None:
    async with running_relay(ops_settings, policy=None) as relay:
        order = await create_order(relay)
        # the message names a party's alias, and a party, in its own headers: irrelevant
        data = message(STRANGER, f"{rcpt}, {order.seller_alias}", Cc=SELLER).as_bytes()
        code, text = await send(relay.port, STRANGER, [rcpt], data)
        assert code == 250 and text.startswith("2.0.0"), text
        got = await sink.wait_for(1)
        rows = await ops_records(relay.engine)
    assert [m.rcpt_tos for m in got] == [[OPS]]
    assert got[0].data.endswith(data.replace(b"\n", b"\r\n")) or data in got[0].data
    assert got[0].data.startswith(b"Received: from client.test ([127.0.0.1])")
    assert len(rows) == 1
    row = rows[0]
    assert row.kind == "ops" and row.verdict == "deliver" and row.order_id is None
    assert row.original == data and row.queued_for == OPS
    assert row.mail_from == STRANGER and row.alias.endswith(f"@{DOMAIN}")


async def test_without_an_ops_address_the_message_is_archived_only(make_settings, sink) -> None:
    settings = make_settings(delivery={"smarthost": f"127.0.0.1:{sink.port}"})
    async with running_relay(settings, policy=None) as relay:
        data = message(STRANGER, f"postmaster@{DOMAIN}").as_bytes()
        code, _ = await send(relay.port, STRANGER, [f"postmaster@{DOMAIN}"], data)
        assert code == 250
        rows = await ops_records(relay.engine)
        async with read_tx(relay.engine) as conn:
            queued = (
                await conn.execute(sa.select(sa.func.count()).select_from(deliveries))
            ).scalar()
    assert [(r.verdict, r.queued_for) for r in rows] == [("absorbed", None)]
    assert "relay.postmaster" in rows[0].reason and queued == 0
    assert sink.messages == []


async def test_intake_checks_still_apply(ops_settings, sink) -> None:
    settings = ops_settings.model_copy(
        update={"smtp": ops_settings.smtp.model_copy(update={"max_message_size": 20_000})}
    )
    async with running_relay(settings, policy=None) as relay:
        head = f"From: {STRANGER}\r\nTo: postmaster@{DOMAIN}\r\nSubject: x\r\n\r\n".encode()
        async with RawClient(relay.port) as c:
            # SMTP smuggling: a bare-LF end of data and a second transaction inside
            smuggled = head + b"hi\n.\r\nMAIL FROM:<x@evil.example>\r\n"
            assert (await c.transaction(STRANGER, f"postmaster@{DOMAIN}", smuggled)).startswith(
                "554 5.6.0"
            )
            big = head + (b"x" * 70 + b"\r\n") * 400
            reply = await c.transaction(STRANGER, f"postmaster@{DOMAIN}", big)
            assert reply.startswith("552 5.3.4"), reply
        rows = await ops_records(relay.engine)
    assert [r.verdict for r in rows] == ["refused"]
    assert sink.messages == []


async def test_not_an_open_relay_and_not_mixed_with_party_mail(ops_settings, sink) -> None:
    async with running_relay(ops_settings, policy=None) as relay:
        order = await create_order(relay)
        async with RawClient(relay.port) as c:
            await c.cmd(b"EHLO client.test")
            await c.cmd(f"MAIL FROM:<{BUYER}>".encode())
            # someone else's postmaster is someone else's business
            assert (await c.cmd(b"RCPT TO:<postmaster@shop.example>")).startswith("550 5.7.1")
            assert (await c.cmd(f"RCPT TO:<{OPS}>".encode())).startswith("550 5.7.1")
            assert (await c.cmd(f"RCPT TO:<{order.seller_alias}>".encode())).startswith("250")
            # one DATA reply cannot answer for party mail and ops mail alike
            reply = await c.cmd(f"RCPT TO:<postmaster@{DOMAIN}>".encode())
            assert reply.startswith("452 4.5.3"), reply
            assert (await c.cmd(b"RSET")).startswith("250")
            await c.cmd(f"MAIL FROM:<{BUYER}>".encode())
            assert (await c.cmd(f"RCPT TO:<abuse@{DOMAIN}>".encode())).startswith("250")
            assert (await c.cmd(f"RCPT TO:<{order.seller_alias}>".encode())).startswith("452")


def test_ops_address_must_leave_the_relay_domain() -> None:
    with pytest.raises(SettingsError, match=r"relay\.postmaster"):
        load_settings(relay={"domain": DOMAIN, "postmaster": f"ops@{DOMAIN}"})
    with pytest.raises(SettingsError, match=r"relay\.postmaster"):
        load_settings(relay={"domain": DOMAIN, "postmaster": "not an address"})
    assert load_settings(relay={"domain": DOMAIN, "postmaster": OPS}).relay.postmaster == OPS
