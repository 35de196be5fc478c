"""Every third-party message in ../shared/corpus, sent buyer -> seller alias through a
running relay (real content policy, real SMTP): no 451 and no 5xx of our making, every
accepted message arrives, and no delivered copy carries a trace of the buyer.

Clear refusals of genuinely broken or unacceptable input are fine: 554 5.6.0 (intake),
552 5.3.4 (size), 554 5.4.6 (hop count) and 550 5.7.1 with a reason (policy or sender).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from relay.store import archive
from tests.conftest import shared_path
from tests.helpers import BUYER, ORDER, SELLER, Received, create_order, running_relay, send

pytestmark = pytest.mark.slow

BUYER_DOMAIN = BUYER.rpartition("@")[2]
FROM_LINE = f"From: Alice Buyer <{BUYER}>\r\n".encode()
NOT_MESSAGES = ("readme", "license", "licence", "copying", "copyright")
MESSAGE_SUFFIXES = (".eml", ".raw", ".txt", ".msg")
FIELD = re.compile(rb"^([!-9;-~]+)[ \t]*:")
CLEAR_REFUSALS = {(554, "5.6.0"), (552, "5.3.4"), (554, "5.4.6"), (550, "5.7.1")}
PG_SAMPLE_EVERY = 10
CONCURRENCY = 4


def corpus_files() -> list[Path]:
    """Every raw message under the corpus: .eml/.raw/.txt files, not READMEs, licences or
    flanker's address/URL lists (see ../shared/corpus/README.md: 215 messages)."""
    root = shared_path("corpus")
    return [
        path
        for path in sorted(root.rglob("*"))
        if path.is_file()
        and path.suffix.lower() in MESSAGE_SUFFIXES
        and not path.name.lower().startswith(NOT_MESSAGES)
        and "address-lists" not in path.relative_to(root).parts
    ]


def as_buyer(raw: bytes) -> bytes:
    """CRLF line endings; every From header (with its continuation lines) replaced by
    the buyer's, added at the top of the header section (after an mbox From_ line)."""
    data = re.sub(rb"\r\n|\r|\n", b"\r\n", raw)
    lines = data.split(b"\r\n")
    prefix: list[bytes] = []
    if lines and lines[0].startswith(b"From "):
        prefix.append(lines.pop(0))
    if lines and lines[0] and not FIELD.match(lines[0]):
        lines.insert(0, b"")  # no header section at all: the whole file is a body
    kept: list[bytes] = []
    in_headers, dropping = True, False
    for i, line in enumerate(lines):
        if in_headers and line == b"":
            in_headers = False
        if not in_headers:
            kept.extend(lines[i:])
            break
        if dropping and line[:1] in (b" ", b"\t"):
            continue
        m = FIELD.match(line)
        dropping = bool(m and m.group(1).lower() == b"from")
        if not dropping:
            kept.append(line)
    body = b"\r\n".join(kept)
    head = b"".join(p + b"\r\n" for p in prefix)
    out = head + FROM_LINE + body
    return out if out.endswith(b"\r\n") else out + b"\r\n"


def reply_key(code: int, text: str) -> tuple[int, str]:
    parts = text.split()
    return code, parts[0] if parts and re.fullmatch(r"\d\.\d{1,3}\.\d{1,3}", parts[0]) else ""


def queued_ids(text: str) -> list[str]:
    m = re.search(r"[Qq]ueued as (.+)$", text)
    return [i.strip() for i in m.group(1).split(",")] if m else []


def find_delivery(messages: list[Received], queued: str) -> Received | None:
    needle = f"message-id: <{queued}".encode().lower()
    for got in messages:
        if needle in got.data.lower():
            return got
    return None


def leaks(got: Received) -> list[str]:
    lowered = got.data.lower()
    found = [s for s in (BUYER, BUYER_DOMAIN) if s.encode() in lowered]
    if BUYER_DOMAIN in got.mail_from.lower() or any(BUYER_DOMAIN in r for r in got.rcpt_tos):
        found.append("envelope")
    return found


def test_corpus_files_found() -> None:
    files = corpus_files()
    assert len(files) >= 215, f"only {len(files)} corpus messages found"
    assert not any("address-lists" in str(p) for p in files)


async def test_corpus_sweep(make_settings, sink, db_url: str) -> None:
    files = corpus_files()
    if db_url.startswith("postgresql"):
        files = files[::PG_SAMPLE_EVERY]
    settings = make_settings(
        delivery={"smarthost": f"127.0.0.1:{sink.port}", "concurrency": 10},
        policy={"enabled": True},
        smtp={"max_message_size": 10 * 1024 * 1024},
        limits={"per_order_day": 0, "per_party_hour": 0},  # 215 messages in one order
    )
    started = time.monotonic()
    crashes: dict[str, str] = {}
    results: dict[str, tuple[int, str]] = {}
    async with running_relay(settings) as relay:
        assert relay.handler is not None and relay.handler.pipeline.policy is not None
        _record_crashes(relay, crashes)
        order = await create_order(
            relay, buyer_locale="de-DE", buyer_name="Alice", seller_name="Shop GmbH"
        )
        slots = asyncio.Semaphore(CONCURRENCY)
        by_digest: dict[str, str] = {}

        root = shared_path("corpus")
        raws = {str(p.relative_to(root)): as_buyer(p.read_bytes()) for p in files}

        async def one(name: str, data: bytes) -> None:
            by_digest[hashlib.sha256(data).hexdigest()] = name
            async with slots:
                results[name] = await send(relay.port, BUYER, [order.seller_alias], data)

        await asyncio.gather(*(one(n, d) for n, d in raws.items()))
        accepted = {n: queued_ids(t) for n, (c, t) in results.items() if c == 250}
        archived = await archive.search(
            relay.engine, archive.SearchFilter(order_id=ORDER, limit=10_000)
        )
        # held by the policy (issue 12): accepted and archived, delivered only on release
        held = {r["relay_message_id"].split("@")[0][:12] for r in archived
                if r["verdict"] == "hold"}
        expected = sum(len(set(ids) - held) for ids in accepted.values())
        try:
            await sink.wait_for(expected, timeout=60)
        finally:
            tally = Counter(" ".join(map(str, reply_key(c, t))) for c, t in results.values())
            took = time.monotonic() - started
            print(
                f"\ncorpus sweep on {db_url.split(':')[0]}: {len(files)} messages in "
                f"{took:.1f}s; replies {dict(sorted(tally.items()))}"
            )
            for name, (code, text) in sorted(results.items()):
                if code != 250:
                    print(f"  {code} {text[:110]}  <- {name}")
            for digest, tb in crashes.items():
                print(f"  CRASH in {by_digest.get(digest, digest)}:\n{tb}")

    problems = []
    for name, (code, text) in sorted(results.items()):
        key = reply_key(code, text)
        if code == 250:
            continue
        if 400 <= code < 500:
            problems.append(f"{name}: {code} {text} (our fault)")
        elif key not in CLEAR_REFUSALS or (key == (550, "5.7.1") and " rule " not in text):
            problems.append(f"{name}: {code} {text} (not a clear refusal)")
    assert not problems, "\n".join(problems)
    assert not crashes, f"pipeline raised for {sorted(by_digest.get(d, d) for d in crashes)}"

    for name, ids in accepted.items():
        assert ids, f"{name}: 250 without a queue id: {results[name][1]}"
        for queued in ids:
            if queued in held:
                continue
            got = find_delivery(sink.messages, queued)
            assert got is not None, f"{name}: accepted as {queued} but never delivered"
            assert got.rcpt_tos == [SELLER]
            assert f"<{order.buyer_alias}>".encode() in got.data, f"{name}: From not the alias"
            assert not leaks(got), f"{name}: delivered copy leaks the buyer: {leaks(got)}"
    assert all(not leaks(m) for m in sink.messages)
    assert len(sink.messages) == expected
    # Every message that reached DATA is archived, the refused ones with their reason.
    assert len(archived) == len(files)
    refused = [r for r in archived if r["verdict"] in ("refused", "reject")]
    assert len(refused) == len(results) - len(accepted)
    assert all(r["reason"] for r in refused)


def _record_crashes(relay: Any, crashes: dict[str, str]) -> None:
    """Wrap the pipeline so an exception (which the handler turns into 451) keeps its
    traceback, keyed by the message's sha256."""
    pipeline = relay.handler.pipeline
    inner = pipeline.accept

    async def accept(info: Any, rcpts: Any, raw: bytes) -> Any:
        try:
            return await inner(info, rcpts, raw)
        except Exception:
            crashes[hashlib.sha256(raw).hexdigest()] = traceback.format_exc()
            raise

    pipeline.accept = accept
