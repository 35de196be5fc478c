"""International mail (RFC 6532 raw UTF-8 headers, legacy Latin-1, undecodable bytes) over
real SMTP: accepted, archived byte for byte, judged and rewritten. A message that reaches
DATA is archived or refused with a reason, never a 4xx of our own making."""

from __future__ import annotations

import asyncio
import hashlib
from email.header import decode_header, make_header
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from relay.mail.parse import header_text
from relay.store.archive import SearchFilter, count_records, get_record, search, verify
from tests.helpers import BUYER, create_order, running_relay, send

HEAD = (
    "To: {to}\r\nDate: Fri, 27 Nov 2026 09:00:00 +0000\r\nMIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"
)


def _msg(to: str, head: bytes, body: str = "Hallo, wann kommt mein Paket?\r\n") -> bytes:
    return head + HEAD.format(to=to).encode() + b"\r\n" + body.encode()


CASES: list[tuple[str, bytes, str]] = [
    ("utf8-display-name",
     f"From: Jürgen Müller <{BUYER}>\r\nSubject: Frage\r\nMessage-ID: <a1@buyer.example>\r\n"
     .encode(), "Frage"),
    ("utf8-subject",
     f"From: {BUYER}\r\nSubject: Größe und Farbe – 注文について\r\n"
     "Message-ID: <a2@buyer.example>\r\n".encode(), "Größe und Farbe – 注文について"),
    ("utf8-message-id",
     f"From: {BUYER}\r\nSubject: ids\r\nMessage-ID: <größe.1@bücher.example>\r\n"
     f"In-Reply-To: <änderung@bücher.example>\r\nReferences: <änderung@bücher.example>\r\n"
     .encode(), "ids"),
    ("latin1-from-and-subject",
     f"From: J\xfcrgen M\xfcller <{BUYER}>\r\nSubject: Gr\xf6\xdfe\r\n"
     "Message-ID: <a4@buyer.example>\r\n".encode("latin-1"), "Größe"),
    ("undecodable-bytes",
     f"From: \xff\xfe <{BUYER}>\r\nSubject: a\xc3(b\x80\r\nMessage-ID: <a5\xff@buyer.example>\r\n"
     "X-Junk: \xc0\xaf\xed\xa0\x80\r\n".encode("latin-1"), "a"),
]  # fmt: skip


async def test_international_headers_are_served(make_settings, sink) -> None:
    settings = make_settings(delivery={"smarthost": f"127.0.0.1:{sink.port}"})
    async with running_relay(settings) as relay:  # the shipped content policy judges it
        order = await create_order(relay, buyer_name="Jürgen", seller_name="Shop GmbH")
        sent = {}
        for name, head, _ in CASES:
            raw = _msg(order.seller_alias, head)
            code, text = await send(relay.port, BUYER, [order.seller_alias], raw)
            assert code == 250, (name, text)
            sent[name] = raw
        got = await sink.wait_for(len(CASES))
        rows = await search(relay.engine, SearchFilter(order_id=order.id))
        assert len(rows) == len(CASES)
        for row, (name, _, subject) in zip(reversed(rows), CASES, strict=True):
            record = await get_record(relay.engine, row["id"])
            assert record is not None
            assert bytes(record["original"]) == sent[name], name
            assert record["sha256"] == hashlib.sha256(sent[name]).hexdigest()
            assert record["subject"].startswith(subject), (name, record["subject"])
            assert "\ufffd" not in record["from_header"] or name == "undecodable-bytes"
            delivered = bytes(record["delivered"])
            shown = next(  # the Subject as the recipient's client shows it
                line for line in delivered.split(b"\r\n") if line.startswith(b"Subject:")
            )
            text = str(make_header(decode_header(header_text(shown[8:]).strip())))
            assert text == record["subject"], (name, text)
            assert BUYER.encode() not in delivered
        assert {m.data.split(b"\r\n\r\n")[0].count(b"\r\nSubject:") for m in got} == {1}
        assert (await verify(relay.engine)).ok
        assert (await search(relay.engine, SearchFilter(text="Größe")))


# --- fuzz: arbitrary 8-bit header bytes through the pipeline ---------------------------

_NAMES = [b"From", b"Subject", b"Message-ID", b"In-Reply-To", b"References", b"To", b"Cc",
          b"Reply-To", b"Content-Type", b"X-Mailer", b"Auto-Submitted", b"Date"]  # fmt: skip
_value = st.binary(max_size=60).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))


@st.composite
def _raw_message(draw: st.DrawFn) -> bytes:
    fields = draw(st.lists(st.tuples(st.sampled_from(_NAMES), _value), max_size=8))
    head = [b"From: " + draw(_value) + f" <{BUYER}>".encode()]
    head += [name + b": " + value for name, value in fields if name != b"From"]
    if draw(st.booleans()):  # a folded line
        head.append(b"Subject: " + draw(_value) + b"\r\n\t" + draw(_value))
    body = draw(st.binary(max_size=200)).replace(b"\r", b"").replace(b"\n", b"\r\n")
    return b"\r\n".join(head) + b"\r\n\r\n" + body


@pytest.fixture
def fuzz_db(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path}/fuzz.sqlite3"


def test_fuzzed_headers_are_archived_or_refused(fuzz_db: str) -> None:
    """Every generated message gets a 250 or a 5xx with a reason, and exactly one archive
    record; the chain verifies at the end. One relay serves all examples (SQLite)."""
    from relay.pipeline import SessionInfo
    from relay.store.resolve import resolve_alias
    from tests.helpers import DOMAIN, test_settings

    # 150 examples into one order: the per-order and per-party limits would turn the
    # later ones into 450s, which this test does not measure.
    settings = test_settings(
        fuzz_db, limits={"per_order_day": 0, "per_party_hour": 0, "per_party_day": 0}
    )
    loop = asyncio.new_event_loop()
    ctx = running_relay(settings, worker=False)  # no notices racing the record count
    relay = loop.run_until_complete(ctx.__aenter__())
    try:
        order = loop.run_until_complete(create_order(relay))
        info = SessionInfo("fuzz", "127.0.0.1", "client.test", BUYER)
        seen: list[int] = []

        @hsettings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
        @given(_raw_message())
        def one(raw: bytes) -> None:
            async def go() -> None:
                res = await resolve_alias(relay.engine, DOMAIN, order.seller_alias)
                before = await count_records(relay.engine)
                reply = await relay.handler.pipeline.accept(info, [res], raw)
                assert reply.code == 250 or reply.code >= 500, str(reply)
                after = await count_records(relay.engine)
                assert after == before + 1
                seen.append(reply.code)

            loop.run_until_complete(go())

        one()
        assert 250 in seen  # the generator does produce deliverable messages
        assert loop.run_until_complete(verify(relay.engine)).ok
    finally:
        loop.run_until_complete(ctx.__aexit__(None, None, None))
        loop.close()



class _BrokenPolicy:
    """A content stage with a bug: the last-resort path, which no real input should reach
    (every one found is fixed at its stage), still archives and refuses with a reason."""

    async def evaluate(self, raw: bytes, ctx: object) -> object:
        raise RuntimeError("bug in a content stage, quoting alice@buyer.example")


async def test_content_stage_failure_is_archived_and_refused(make_settings, sink) -> None:
    settings = make_settings(delivery={"smarthost": f"127.0.0.1:{sink.port}"})
    async with running_relay(settings, policy=_BrokenPolicy()) as relay:
        order = await create_order(relay)
        raw = _msg(order.seller_alias, f"From: {BUYER}\r\nSubject: hi\r\n".encode())
        code, text = await send(relay.port, BUYER, [order.seller_alias], raw)
        assert code == 554 and text.startswith("5.6.0"), text
        assert "buyer.example" not in text and "Traceback" not in text
        rows = await search(relay.engine, SearchFilter(order_id=order.id))
        assert [(r["verdict"], r["reason"]) for r in rows] == [
            ("refused", "internal processing error (RuntimeError)")
        ]
        record = await get_record(relay.engine, rows[0]["id"])
        assert record is not None and bytes(record["original"]) == raw
        assert (await verify(relay.engine)).ok
        assert sink.messages == []


@pytest.mark.parametrize(
    ("subject", "shown"),
    [
        (b"Gr\xc3\xb6\xc3\x9fe =?utf-8?q?caf=C3=A9?= ok", "Größe café ok"),  # 6532 and 2047 mixed
        (b"=?utf-8?q?caf=C3=A9?= plain", "café plain"),
        (b"Gr\xf6\xdfe =?iso-8859-1?q?caf=E9?=", "Größe café"),  # Latin-1 beside a word
        (b"=?x-unknown?q?a?= \xff\xfe", "=?x-unknown?q?a?= ÿþ"),
    ],
)
def test_subject_decoding_is_total(subject: bytes, shown: str) -> None:
    from relay.mail.parse import Inbound, intake

    inbound = intake(b"From: a@b.example\r\nSubject: " + subject + b"\r\n\r\nx", max_hops=30)
    assert isinstance(inbound, Inbound) and inbound.decoded("Subject") == shown
