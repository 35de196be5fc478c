"""Every corpus message gets a verdict; hostile structure is refused or judged in < 2 s CPU."""

from __future__ import annotations

import time
from email.message import EmailMessage
from email.policy import SMTP

import pytest

from relay.policy import PolicyContext, Verdict
from tests.policy.helpers import CORPUS, ctx, make

CPU_BUDGET = 2.0


def _corpus_files():
    if not CORPUS.exists():
        return []
    return sorted(p for p in CORPUS.rglob("*") if p.is_file()
                  and p.suffix in (".eml", ".raw", ".txt", ".msg")
                  and "address-lists" not in p.parts and p.name.upper() != "LICENSE.TXT")


@pytest.mark.skipif(not CORPUS.exists(), reason="../shared/corpus not present")
def test_corpus_sweep_every_message_gets_a_verdict(engine):
    files = _corpus_files()
    assert len(files) > 100
    structural = []
    for path in files:
        raw = path.read_bytes()
        for direction in ("seller-to-buyer", "buyer-to-seller"):
            v = engine.evaluate(raw, ctx(direction, buyer_locale="en-US"))
            assert isinstance(v, Verdict)
            assert v.action in ("deliver", "redact", "hold", "reject")
            assert (v.message is None) == (v.action == "reject")
            if v.action == "reject":
                assert v.reason.startswith("Message refused by rule ")
            if v.reason.endswith("could not be checked"):
                structural.append(path.name)
    assert not structural, f"engine failed internally on {structural}"


def _cpu(engine, raw: bytes, context: PolicyContext) -> tuple[Verdict, float]:
    t = time.process_time()
    v = engine.evaluate(raw, context)
    return v, time.process_time() - t


def _nested(depth: int) -> bytes:
    inner = "text/plain\r\n\r\nhello\r\n"
    body = inner
    for i in range(depth):
        b = f"b{i}"
        body = (f'multipart/mixed; boundary="{b}"\r\n\r\n--{b}\r\nContent-Type: {body}'
                f"\r\n--{b}--\r\n")
    return f"From: a@shop.example\r\nSubject: x\r\nContent-Type: {body}".encode()


def test_deep_nesting_refused_quickly(engine):
    v, cpu = _cpu(engine, _nested(200), ctx())
    assert v.action == "reject" and "nest" in v.reason
    assert cpu < CPU_BUDGET


def test_thousands_of_parts_refused_quickly(engine):
    m = EmailMessage()
    m["Subject"] = "parts"
    m.set_content("hello")
    for i in range(3000):
        m.add_attachment(b"x", maintype="application", subtype="octet-stream", filename=f"{i}")
    v, cpu = _cpu(engine, m.as_bytes(policy=SMTP), ctx())
    assert v.action == "reject" and "parts" in v.reason
    assert cpu < CPU_BUDGET


def test_megabyte_header_refused_quickly(engine):
    raw = b"Subject: " + b"a" * 1_000_000 + b"\r\nFrom: a@shop.example\r\n\r\nbody\r\n"
    v, cpu = _cpu(engine, raw, ctx())
    assert v.action == "reject" and "header" in v.reason
    assert cpu < CPU_BUDGET
    folded = b"Subject: x\r\n" + b"X-Junk: y\r\n" * 90_000 + b"\r\nbody\r\n"
    v, cpu = _cpu(engine, folded, ctx())
    assert v.action == "reject" and cpu < CPU_BUDGET


def test_deeply_nested_570k_html_judged_quickly(engine):
    html = "<div>" * 60_000 + "Call me 0151 23456789" + "</div>" * 60_000
    assert len(html) > 570_000
    v, cpu = _cpu(engine, make("see html", html), ctx("buyer-to-seller", buyer_locale="de-DE"))
    assert v.action == "reject" and "nests" in v.reason
    assert cpu < CPU_BUDGET


def test_moderately_nested_html_is_judged(engine):
    html = "<div>" * 400 + "Call me 0151 23456789" + "</div>" * 400
    v, cpu = _cpu(engine, make("see html", html), ctx("buyer-to-seller", buyer_locale="de-DE"))
    assert v.action == "redact" and cpu < CPU_BUDGET


@pytest.mark.parametrize("raw", [
    b"", b"\x00\x01\x02", b"garbage without headers", b"Content-Type: multipart/mixed\r\n\r\n",
    b"Content-Type: text/plain; charset=x-unknown-charset\r\n\r\n\xff\xfe hello",
    b"Content-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!notbase64",
    b"Subject: =?utf-8?q?broken=ZZ?=\r\nContent-Type: image/jpeg\r\n\r\n\xff\xd8\xff",
])
def test_garbage_never_raises(engine, raw):
    v = engine.evaluate(raw, ctx())
    assert v.action in ("deliver", "redact", "hold", "reject")


def test_engine_is_shareable_between_threads(engine):
    from concurrent.futures import ThreadPoolExecutor

    raw = make("Call me on 020 7946 0321 or mail jo@example.org")
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: engine.evaluate(raw, ctx()), range(32)))
    assert {r.message for r in results} == {results[0].message}
    assert all(r.action == "redact" for r in results)


def test_huge_text_is_refused_not_half_read(engine):
    text = "filler words here. " * 60_000 + "call me 020 7946 0321"
    v, cpu = _cpu(engine, make(text), ctx())
    assert v.action == "reject" and "too large" in v.reason
    assert cpu < CPU_BUDGET


def test_many_medium_parts_hit_the_text_budget(engine):
    m = EmailMessage()
    m["Subject"] = "parts"
    m.set_content("hello")
    for i in range(40):
        m.add_attachment(("lorem ipsum " * 12_000).encode(), maintype="text", subtype="plain",
                         filename=f"n{i}.txt")
    v, cpu = _cpu(engine, m.as_bytes(policy=SMTP), ctx())
    assert v.action == "reject" and "too much text" in v.reason
    assert cpu < CPU_BUDGET


def test_engine_pickles_for_worker_processes(engine):
    import pickle

    clone = pickle.loads(pickle.dumps(engine))
    assert clone.evaluate(make("Ring me on 020 7946 0321"), ctx()).action == "redact"


def test_long_single_line_text_is_cheap(engine):
    text = ("word 12:30 wrote something " * 400 + "\n") * 3
    v, cpu = _cpu(engine, make(text), ctx())
    assert v.action in ("deliver", "redact", "hold", "reject") and cpu < 0.5
