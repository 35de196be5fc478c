"""Bounces coming back: DSNs to signed return paths, forgeries refused at RCPT, notices
that never name the recipient, and automatic mail that is never answered."""

from __future__ import annotations

import asyncio
import email
import email.policy
from datetime import UTC, datetime, timedelta
from typing import Any

import dkim
import sqlalchemy as sa

from relay.bounce import Original, compose_notice, explain, notice_entry
from relay.bounces_in import read_dsn
from relay.db import read_tx
from relay.delivery.route import Router
from relay.delivery.transport import Outcome
from relay.delivery.worker import DeliveryWorker
from relay.dkim import DkimSigner, generate_key
from relay.mail.verp import new_token, return_path
from relay.store import archive, queue
from relay.store.tables import archive as archive_table
from tests.delivery_support import (
    all_status,
    assert_notice,
    buyer_writes,
    delivery_rows,
    dsn,
    event_names,
    make_order,
    notices,
    refuse,
    smarthost,
    wait_until,
)
from tests.helpers import BUYER, DOMAIN, ORDER, SELLER, message, running_relay, send

SECRET = "ab" * 32  # bounce.secret: lets the tests sign return paths of their own


def settings_for(make_settings: Any, sink: Any, **delivery: Any) -> Any:
    settings = smarthost(make_settings, sink, **delivery)
    return settings.model_copy(
        update={"bounce": settings.bounce.model_copy(update={"secret": SECRET})}
    )


async def delivered_once(relay: Any, sink: Any) -> tuple[Any, str]:
    """Deliver one buyer message and return the order and the return path it left with."""
    order = await make_order(relay)
    await buyer_writes(relay, order)
    got = (await sink.wait_for(1))[0]
    await wait_until(lambda: all_status(relay.engine, "delivered", 1))
    return order, got.mail_from


async def dsn_records(engine: Any) -> list[Any]:
    async with read_tx(engine) as conn:
        q = sa.select(archive_table).where(archive_table.c.kind == "dsn")
        return list((await conn.execute(q)).all())


# ---------------------------------------------------------------- failed deliveries


async def test_5xx_fails_at_once_and_notifies_without_the_address(make_settings, sink) -> None:
    # The remote text quotes the recipient's address; the notice must not.
    sink.rcpt_reply = refuse(SELLER, f"550 5.1.1 <{SELLER}>: Recipient address rejected")
    async with running_relay(smarthost(make_settings, sink), policy=None) as relay:
        order = await make_order(relay)
        await buyer_writes(relay, order, subject="Where is my parcel?")
        got = (await sink.wait_for(1))[0]
        assert_notice(got, order)
        assert b"Where is my parcel?" in got.data
        assert b"no longer valid" in got.data  # explained from 5.1.1, not quoted
        rows = await wait_until(lambda: all_status(relay.engine, None, 2, last="delivered"))
        assert rows[0].status == "failed" and rows[0].attempts == 1 and rows[0].last_code == 550
        assert rows[1].mail_from == "" and rows[1].rcpt == BUYER and not rows[1].notify
        record = await archive.get_record(relay.engine, rows[0].archive_id)
        assert [e["event"] for e in record["events"]] == ["failed"]  # type: ignore[index]
        (notice,) = await notices(relay.engine)
        assert notice.order_id == ORDER and notice.alias == order.seller_alias
        assert SELLER not in notice.delivered.decode()
        notice_record = await archive.get_record(relay.engine, notice.id)
        assert [e["event"] for e in notice_record["events"]] == ["delivered"]  # type: ignore[index]
        result = await archive.verify(relay.engine)
        assert result.ok and result.records == 2, result


async def test_data_5xx_fails_too(make_settings, sink) -> None:
    sink.data_reply = lambda data: "554 5.7.1 spam" if b"shop.example" in data else None
    async with running_relay(smarthost(make_settings, sink), policy=None) as relay:
        order = await make_order(relay)
        await buyer_writes(relay, order)
        assert_notice((await sink.wait_for(1))[0], order)
        rows = await delivery_rows(relay.engine)
        assert rows[0].status == "failed" and rows[0].last_code == 554


async def test_give_up_after_expires_with_a_notice(make_settings, sink) -> None:
    sink.rcpt_reply = refuse(SELLER, "451 4.2.0 mailbox busy")
    settings = smarthost(make_settings, sink, give_up_after="2s", retry=["1s"])
    async with running_relay(settings, policy=None) as relay:
        order = await make_order(relay)
        await buyer_writes(relay, order)
        got = (await sink.wait_for(1, timeout=15))[0]
        assert_notice(got, order)
        assert b"could not be reached for a while" in got.data  # give_up_after: 2 s
        rows = await delivery_rows(relay.engine)
        assert rows[0].status == "failed" and rows[0].attempts >= 2
        names = await event_names(relay.engine, rows[0].id)
        assert names[-1] == "expired" and set(names[:-1]) == {"deferred"}
        assert rows[0].last_error.startswith("expired:")


async def test_a_failed_notice_creates_no_further_notice(make_settings, sink) -> None:
    sink.rcpt_reply = lambda rcpt: "550 5.1.1 no such user"
    async with running_relay(smarthost(make_settings, sink), policy=None) as relay:
        order = await make_order(relay)
        await buyer_writes(relay, order)
        rows = await wait_until(lambda: all_status(relay.engine, "failed", 2))
        # A notice about the notice would have been queued in the same transaction.
        assert len(await delivery_rows(relay.engine)) == 2
        assert rows[1].mail_from == "" and rows[1].rcpt == BUYER
        assert len(await notices(relay.engine)) == 1
        assert sink.messages == []
        assert (await archive.verify(relay.engine)).ok


# ---------------------------------------------------------------- DSNs over SMTP


async def test_failed_dsn_marks_failed_and_notifies_the_sender(make_settings, sink) -> None:
    async with running_relay(settings_for(make_settings, sink), policy=None) as relay:
        order, rp = await delivered_once(relay, sink)
        assert rp.startswith("bounce+") and rp.endswith("@" + DOMAIN)
        code, text = await send(relay.port, "", [rp], dsn(rp))
        assert code == 250, text
        notice = (await sink.wait_for(2))[1]
        assert_notice(notice, order)
        assert b"no longer valid" in notice.data
        rows = await delivery_rows(relay.engine)
        assert rows[0].status == "failed"
        assert await event_names(relay.engine, rows[0].id) == ["delivered", "bounced"]
        record = await archive.get_record(relay.engine, rows[0].archive_id)
        assert [e["event"] for e in record["events"]] == ["delivered", "bounced"]  # type: ignore[index]
        assert "failed 5.1.1" in record["events"][1]["detail"]  # type: ignore[index]
        (report,) = await dsn_records(relay.engine)
        assert report.verdict == "absorbed" and report.reason == "failed 5.1.1"
        await wait_until(lambda: all_status(relay.engine, None, 2, last="delivered"))
        result = await archive.verify(relay.engine)
        assert result.ok and result.records == 3, result  # message, DSN, notice


async def test_repeated_reports_send_one_notice(make_settings, sink) -> None:
    """Three copies of the report at once (remote retries, several MTAs): one notice."""
    async with running_relay(settings_for(make_settings, sink), policy=None) as relay:
        _, rp = await delivered_once(relay, sink)
        results = await asyncio.gather(*(send(relay.port, "", [rp], dsn(rp)) for _ in range(3)))
        assert [code for code, _ in results] == [250, 250, 250], results
        # Each report is handled before its 250: the notice count is final now.
        assert len(await notices(relay.engine)) == 1
        await sink.wait_for(2)
        rows = await delivery_rows(relay.engine)
        assert len(rows) == 2
        assert await event_names(relay.engine, rows[0].id) == ["delivered"] + ["bounced"] * 3
        assert (await archive.verify(relay.engine)).ok


async def test_delayed_dsn_is_recorded_without_a_notice(make_settings, sink) -> None:
    async with running_relay(settings_for(make_settings, sink), policy=None) as relay:
        _, rp = await delivered_once(relay, sink)
        code, text = await send(relay.port, "", [rp], dsn(rp, "delayed", "4.4.7"))
        assert code == 250, text  # handled before the 250: the state below is final
        rows = await delivery_rows(relay.engine)
        assert len(rows) == 1 and rows[0].status == "delivered"
        assert await event_names(relay.engine, rows[0].id) == ["delivered", "delayed"]
        assert await notices(relay.engine) == []
        (report,) = await dsn_records(relay.engine)
        assert report.reason == "delayed 4.4.7"


async def test_plain_text_bounce_counts_as_failure(make_settings, sink) -> None:
    async with running_relay(settings_for(make_settings, sink), policy=None) as relay:
        order, rp = await delivered_once(relay, sink)
        qmail = (
            f"From: MAILER-DAEMON@mx.shop.example\r\nTo: {rp}\r\n"
            "Subject: failure notice\r\n\r\n"
            "Hi. This is the qmail-send program at mx.shop.example.\r\n"
            "I'm afraid I wasn't able to deliver your message to the following addresses.\r\n"
            "This is a permanent error; I've given up. Sorry it didn't work out.\r\n\r\n"
            f"<{SELLER}>:\r\nSorry, no mailbox here by that name. (#5.1.1)\r\n"
        ).encode()
        code, text = await send(relay.port, "", [rp], qmail)
        assert code == 250, text
        assert_notice((await sink.wait_for(2))[1], order)
        assert (await delivery_rows(relay.engine))[0].status == "failed"


async def test_an_out_of_office_to_the_return_path_is_no_bounce(make_settings, sink) -> None:
    """RFC 3834 responders answer the return path; bounce-like words from a person or
    an autoresponder must not fail a delivered message."""
    async with running_relay(settings_for(make_settings, sink), policy=None) as relay:
        _, rp = await delivered_once(relay, sink)
        ooo = message(
            SELLER,
            rp,
            subject="Automatic reply: Question about my order",
            body="I am out of the office: mailbox unavailable until Monday.\n",
            Auto_Submitted="auto-replied",
        ).as_bytes()
        code, text = await send(relay.port, "", [rp], ooo)
        assert code == 250, text
        rows = await delivery_rows(relay.engine)
        assert rows[0].status == "delivered" and await notices(relay.engine) == []
        (report,) = await dsn_records(relay.engine)
        assert report.reason == "not a delivery status report"


async def test_mail_that_is_no_report_changes_nothing(make_settings, sink) -> None:
    async with running_relay(settings_for(make_settings, sink), policy=None) as relay:
        _, rp = await delivered_once(relay, sink)
        data = message("someone@elsewhere.example", rp, subject="hello").as_bytes()
        code, _ = await send(relay.port, "someone@elsewhere.example", [rp], data)
        assert code == 250  # absorbed and archived for ops, never answered
        rows = await delivery_rows(relay.engine)
        assert len(rows) == 1 and rows[0].status == "delivered"
        assert await event_names(relay.engine, rows[0].id) == ["delivered"]
        (report,) = await dsn_records(relay.engine)
        assert report.reason == "not a delivery status report"


async def test_forged_return_paths_are_refused_at_rcpt(make_settings, sink) -> None:
    key = bytes.fromhex(SECRET)
    async with running_relay(settings_for(make_settings, sink), policy=None) as relay:
        _, rp = await delivered_once(relay, sink)
        local = rp.rpartition("@")[0]
        token, _, mac = local.removeprefix("bounce+").rpartition(".")
        forged = [
            f"bounce+{token}.{mac[:-1]}{'0' if mac[-1] != '0' else '1'}@{DOMAIN}",  # bad MAC
            f"bounce+{new_token()}.{mac}@{DOMAIN}",  # unknown token, copied MAC
            return_path(new_token(), key=bytes(32), domain=DOMAIN),  # signed with another key
            f"bounce+{token}@{DOMAIN}",  # malformed: no MAC
            f"bounce+@{DOMAIN}",
            f"bounce+{token}.{mac}.extra@{DOMAIN}",
        ]
        for address in forged:
            code, text = await send(relay.port, "", [address], dsn(address))
            assert (code, text.split()[0]) == (550, "5.1.1"), address
        # The genuine one still works, and nothing was changed by the forgeries.
        rows = await delivery_rows(relay.engine)
        assert rows[0].status == "delivered"
        assert await dsn_records(relay.engine) == []
        assert return_path(token, key=key, domain=DOMAIN) == rp


async def test_an_auto_reply_that_bounces_is_not_answered(make_settings, sink) -> None:
    sink.rcpt_reply = refuse(SELLER, f"550 5.1.1 <{SELLER}> unknown")
    async with running_relay(settings_for(make_settings, sink), policy=None) as relay:
        order = await make_order(relay)
        ooo = message(
            BUYER, order.seller_alias, subject="Out of office", Auto_Submitted="auto-replied"
        ).as_bytes()
        code, text = await send(relay.port, BUYER, [order.seller_alias], ooo)
        assert code == 250, text
        await wait_until(lambda: all_status(relay.engine, "failed", 1))
        assert len(await delivery_rows(relay.engine)) == 1  # same transaction as the failure
        assert await notices(relay.engine) == []


# ---------------------------------------------------------------- units


def test_read_dsn_prefers_a_failure_among_several_recipients() -> None:
    other = ("", "Final-Recipient: rfc822; other@shop.example", "Action: failed", "Status: 5.2.2")
    outcome = read_dsn(dsn("bounce+x@relay.example", "delayed", "4.4.7", more=other))
    assert outcome is not None and (outcome.action, outcome.status) == ("failed", "5.2.2")
    delayed = read_dsn(dsn("bounce+x@relay.example", "delayed", "4.4.7"))
    assert delayed is not None and (delayed.action, delayed.status) == ("delayed", "4.4.7")
    assert read_dsn(b"Subject: hello\r\n\r\nJust mail.\r\n") is None


def test_explain_never_uses_remote_text() -> None:
    assert explain(550, "5.1.1") == "the recipient's mailbox address is no longer valid"
    assert explain(550, "") == "the recipient's mail system refused the message permanently"
    assert "several days" in explain(451, "4.3.0", expired=True)
    assert explain(None, "5.1.10") == explain(None, "5.1.2")


def _original(**kw: Any) -> Original:
    base: dict[str, Any] = {
        "order_id": ORDER,
        "alias": f"s-abcdefghijklmnopqrst@{DOMAIN}",
        "subject": "Frage zur Bestellung: Größe?",
        "sent_at": datetime.now(UTC),
        "sender": BUYER,
    }
    return Original(**{**base, **kw})


def test_notice_is_well_formed_even_with_a_non_ascii_subject() -> None:
    import email
    import email.policy

    raw = compose_notice(
        _original(),
        reason="the recipient's mailbox is full",
        domain=DOMAIN,
        marketplace="Marketplace",
        now=datetime.now(UTC),
    )
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["Auto-Submitted"] == "auto-replied" and msg["To"] == BUYER
    body = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Größe?" in body and ORDER in body and "mailbox is full" in body
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))


def test_no_notice_for_automatic_mail_or_without_a_sender() -> None:
    args = {"reason": "x", "domain": DOMAIN, "marketplace": "M", "now": datetime.now(UTC)}
    assert notice_entry(_original(), **args) is not None  # type: ignore[arg-type]
    assert notice_entry(_original(automatic=True), **args) is None  # type: ignore[arg-type]
    assert notice_entry(_original(sender=""), **args) is None  # type: ignore[arg-type]
    entry = notice_entry(_original(), **args)  # type: ignore[arg-type]
    assert entry is not None and entry.outgoing is not None
    assert entry.outgoing.mail_from == "" and entry.outgoing.notify is False
    assert entry.record.kind == "notice" and entry.record.rcpt == BUYER


async def test_a_dsn_during_sending_wins_over_the_worker(make_settings, sink) -> None:
    """A bounce that arrives while a worker still holds the row: the worker's late
    outcome changes nothing and the sender hears about it once."""
    settings = settings_for(make_settings, sink)
    async with running_relay(settings, worker=False, policy=None) as relay:
        order = await make_order(relay)
        await buyer_writes(relay, order)
        (item,) = await queue.claim(relay.engine, "w-test", limit=5, lease=timedelta(minutes=1))
        (row,) = await delivery_rows(relay.engine)
        assert row.status == "sending"
        rp = return_path(row.token, key=bytes.fromhex(SECRET), domain=DOMAIN)
        code, text = await send(relay.port, "", [rp], dsn(rp))
        assert code == 250, text
        worker = DeliveryWorker(settings, relay.engine, Router(settings.delivery, None))  # type: ignore[arg-type]
        await worker._record(item, Outcome("failed", 550, "5.1.1", "550 5.1.1 unknown"))
        await worker._record(item, Outcome("deferred", 451, "4.3.0", "451 later"))
        rows = await delivery_rows(relay.engine)
        assert rows[0].status == "failed" and rows[0].last_code is None  # the DSN's verdict
        assert len(await notices(relay.engine)) == 1
        assert await event_names(relay.engine, row.id) == ["bounced", "failed", "deferred"]
        assert (await archive.verify(relay.engine)).ok


async def test_seller_side_notice_names_the_buyer_alias_only(make_settings, sink) -> None:
    """The same guarantee the other way round: the seller never learns the buyer's address."""
    sink.rcpt_reply = refuse(BUYER, f"550 5.2.1 <{BUYER}> mailbox disabled")
    async with running_relay(settings_for(make_settings, sink), policy=None) as relay:
        order = await make_order(relay)
        original = message(SELLER, order.buyer_alias, subject="Your parcel")
        code, text = await send(relay.port, SELLER, [order.buyer_alias], original.as_bytes())
        assert code == 250, text
        got = (await sink.wait_for(1))[0]
        assert got.rcpt_tos == [SELLER] and got.mail_from == "<>"
        parsed = email.message_from_bytes(got.data, policy=email.policy.default)
        body = parsed.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        assert order.buyer_alias in body and ORDER in body
        assert "mailbox is full or unavailable" in body
        for text in (got.data.decode().lower(), body.lower()):
            assert "alice" not in text and "buyer.example" not in text
        assert parsed["In-Reply-To"] == original["Message-ID"]  # threads under the original


def test_expiry_is_explained_with_the_configured_span() -> None:
    assert explain(451, "4.4.1", expired=True, after=timedelta(days=5)).endswith("for 5 days")
    assert explain(451, "4.4.1", expired=True, after=timedelta(hours=1)).endswith("for 1 hour")
    assert explain(451, "", expired=True).endswith("for several days")


async def test_check_known_needs_a_delivery_row(make_settings, sink) -> None:
    async with running_relay(settings_for(make_settings, sink), policy=None) as relay:
        _, rp = await delivered_once(relay, sink)
        bounces = relay.handler.bounces  # type: ignore[union-attr]
        local = rp.rpartition("@")[0]
        assert await bounces.check_known(local) == bounces.check(local) is not None
        stray = return_path(new_token(), key=bytes.fromhex(SECRET), domain=DOMAIN)
        assert bounces.check(stray.rpartition("@")[0]) is not None  # signed by us...
        assert await bounces.check_known(stray.rpartition("@")[0]) is None  # ...but unknown


async def test_a_signed_but_unknown_return_path_is_refused_at_rcpt(make_settings, sink) -> None:
    async with running_relay(settings_for(make_settings, sink), policy=None) as relay:
        stray = return_path(new_token(), key=bytes.fromhex(SECRET), domain=DOMAIN)
        code, text = await send(relay.port, "", [stray], dsn(stray))
        assert (code, text.split()[0]) == (550, "5.1.1")


async def test_notices_are_dkim_signed_like_every_delivered_message(make_settings, sink) -> None:
    pem, txt = generate_key("rsa-sha256")
    signer = DkimSigner(DOMAIN, "s1", pem)
    sink.rcpt_reply = refuse(SELLER, f"550 5.1.1 <{SELLER}> unknown", times=1)
    settings = settings_for(make_settings, sink)
    async with running_relay(settings, policy=None, signer=signer.sign) as relay:
        order = await make_order(relay)
        await buyer_writes(relay, order, subject="first")  # refused: a notice
        assert_notice((await sink.wait_for(1))[0], order)
        await buyer_writes(relay, order, subject="second")  # delivered
        got = await sink.wait_for(2)

    def dnsfunc(name: bytes, timeout: float = 5) -> bytes | None:
        return txt.encode() if name.decode().rstrip(".") == f"s1._domainkey.{DOMAIN}" else None

    for received in got:
        assert received.data.startswith(b"DKIM-Signature:")
        assert dkim.verify(received.data, dnsfunc=dnsfunc), received.data[:300]
