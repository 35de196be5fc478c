"""DSN parsing: RFC 3464 reports, plain-text bounces, and garbage that must not raise."""

from __future__ import annotations

import random

import pytest

from relay.mail.dsn import parse_dsn, scrub

POSTFIX = b"""\
From: MAILER-DAEMON@mx.shop.example (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: bounce+abc@relay.example
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B1"

--B1
Content-Type: text/plain; charset=us-ascii

I'm sorry to have to inform you that your message could not be delivered.

--B1
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.shop.example
X-Postfix-Queue-ID: 4Q1
Original-Envelope-Id: d-42
Arrival-Date: Fri, 27 Nov 2026 09:00:00 +0000

Final-Recipient: rfc822; seller@shop.example
Original-Recipient: rfc822;seller@shop.example
Action: failed
Status: 5.1.1
Remote-MTA: dns; mx.shop.example
Diagnostic-Code: smtp; 550 5.1.1 <seller@shop.example>: Recipient address
    rejected: User unknown in local recipient table

Final-Recipient: rfc822; other@shop.example
Action: delayed
Status: 4.4.1
Diagnostic-Code: X-Postfix; connect to mx.shop.example: Connection timed out

--B1
Content-Type: message/rfc822

From: s-1a2b@relay.example
Subject: hi

hello
--B1--
"""

EXIM = b"""\
From: Mail Delivery System <Mailer-Daemon@mx.shop.example>
Subject: Mail delivery failed: returning message to sender
Auto-Submitted: auto-replied

This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  seller@shop.example
    host mx.shop.example [192.0.2.10]
    SMTP error from remote mail server after RCPT TO:<seller@shop.example>:
    550 5.1.1 User unknown
"""

QMAIL = b"""\
From: MAILER-DAEMON@mx.shop.example
Subject: failure notice

Hi. This is the qmail-send program at mx.shop.example.
I'm afraid I wasn't able to deliver your message to the following addresses.
This is a permanent error; I've given up. Sorry it didn't work out.

<seller@shop.example>:
192.0.2.10 does not like recipient.
Remote host said: 550 sorry, no mailbox here by that name. (#5.1.1)
"""

DELAY_PLAIN = b"""\
From: postmaster@mx.shop.example
Subject: Warning: message 1abc delayed 24 hours

This message was created automatically by mail delivery software.
A message that you sent has not yet been delivered to one or more of its
recipients after more than 24 hours on the queue on mx.shop.example.
Delay reason: 451 4.7.1 greylisted
"""


def test_postfix_report() -> None:
    report = parse_dsn(POSTFIX)
    assert report is not None and report.standard and report.failed
    assert report.reporting_mta == "mx.shop.example" and report.envelope_id == "d-42"
    first, second = report.recipients
    assert (first.action, first.status) == ("failed", "5.1.1")
    assert first.final_recipient == "seller@shop.example"
    assert first.diagnostic.startswith("550 5.1.1") and "User unknown" in first.diagnostic
    assert "seller@" not in first.safe_diagnostic and "<address>" in first.safe_diagnostic
    assert first.remote_mta == "mx.shop.example"
    assert (second.action, second.status) == ("delayed", "4.4.1")


def test_crlf_and_global_delivery_status() -> None:
    raw = POSTFIX.replace(b"message/delivery-status", b"message/global-delivery-status")
    report = parse_dsn(raw.replace(b"\n", b"\r\n"))
    assert report is not None and report.recipients[0].status == "5.1.1"


def test_action_inferred_from_status_and_status_from_diagnostic() -> None:
    raw = POSTFIX.replace(b"Action: failed\n", b"").replace(b"Action: delayed\n", b"")
    report = parse_dsn(raw)
    assert report is not None
    assert [r.action for r in report.recipients] == ["failed", "delayed"]
    raw = POSTFIX.replace(b"Status: 5.1.1\n", b"Status: bogus\n")
    report = parse_dsn(raw)
    assert report is not None and report.recipients[0].status == "5.1.1"  # from diagnostic


def test_delivered_report() -> None:
    raw = POSTFIX.replace(b"Action: failed", b"Action: delivered").replace(
        b"Status: 5.1.1", b"Status: 2.0.0"
    )
    report = parse_dsn(raw)
    assert report is not None and report.recipients[0].action == "delivered"


@pytest.mark.parametrize(
    ("raw", "action", "status"),
    [(EXIM, "failed", "5.1.1"), (QMAIL, "failed", "5.1.1"), (DELAY_PLAIN, "delayed", "4.7.1")],
)
def test_plain_text_bounces(raw: bytes, action: str, status: str) -> None:
    report = parse_dsn(raw)
    assert report is not None and not report.standard
    (r,) = report.recipients
    assert (r.action, r.status) == (action, status)


def test_qmail_recipient_and_exchange_without_code() -> None:
    report = parse_dsn(QMAIL)
    assert report is not None and report.recipients[0].final_recipient == "seller@shop.example"
    exchange = (
        b"From: postmaster@corp.example\r\nSubject: Undeliverable: hello\r\n\r\n"
        b"Delivery has failed to these recipients or groups:\r\n\r\nsomeone\r\n"
    )
    report = parse_dsn(exchange)
    assert report is not None and report.recipients[0].status == "5.0.0"


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00\xff\xfe garbage",
        b"From: friend@x.example\r\nSubject: lunch?\r\n\r\nSee you at noon.\r\n",
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=x\r\n\r\n--x",
        b"Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; x\r\n",
        b'Content-Type: multipart/report; boundary="' + b"a" * 5000 + b'"\r\n\r\n',
    ],
)
def test_not_a_bounce_or_garbage(raw: bytes) -> None:
    assert parse_dsn(raw) is None


def test_fuzzed_reports_never_raise() -> None:
    rng = random.Random(3464)
    for _ in range(300):
        data = bytearray(POSTFIX)
        for _ in range(rng.randint(1, 30)):
            pos = rng.randrange(len(data))
            data[pos] = rng.randrange(256)
        if rng.random() < 0.3:
            del data[rng.randrange(len(data)) :]
        result = parse_dsn(bytes(data))
        assert result is None or all(r.action for r in result.recipients)


def test_scrub() -> None:
    assert scrub("550 <a.b+c@x.example>: no") == "550 <<address>>: no"
    assert scrub("no address here 5.1.1") == "no address here 5.1.1"


def test_failure_words_from_a_person_are_not_a_bounce() -> None:
    raw = (b"From: support@shop.example\r\nSubject: Re: Question\r\n\r\n"
           b"The parcel was undeliverable at your address, user unknown at the door.\r\n")
    assert parse_dsn(raw) is None
