"""No message can stall the relay: hostile shapes are refused (or defused) off the event
loop, permanently, while a normal session next to them is served at once.

Every shape is generated here (none is stored). Each test sends one hostile message from
the registered seller (so it gets past the sender check to every content stage) while a
probe opens fresh sessions and runs whole normal transactions; the probe's banner and
transaction times are asserted.

Timing: the issue asks for < 200 ms. The probe's transaction includes the normal message's
own content checks (in the policy worker processes, beside the hostile one) and a durable
commit, on 2 cores shared with other test runs, where one probe now and then waits on the
scheduler. So the median of the probes made from the start of the hostile message to its
reply (at least five: probing goes on after a quick refusal) must be < 200 ms, banner and
transaction alike; every single one < 2 s (the stalls this guards against were 10-40 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import statistics
import struct
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiosmtplib
import pytest

from relay.policy_pool import workers_ready
from relay.store.archive import SearchFilter, search
from tests.helpers import (
    BUYER,
    DOMAIN,
    ORDER,
    SELLER,
    create_order,
    message,
    running_relay,
    send,
)

MEDIAN_MAX = 0.2  # the 200 ms, for the median: see the module docstring
SINGLE_MAX = 2.0  # any one probe
MIN_PROBES = 5

_HEAD = (
    f"From: {SELLER}\r\nTo: buyer@relay.example\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n"
    "Message-ID: <hostile@shop.example>\r\nMIME-Version: 1.0\r\n"
).encode()


# -- the shapes --------------------------------------------------------------------------


def subject_encoded_words(count: int) -> bytes:
    words = [b"=?utf-8?b?YWJj?="] * count  # 19 bytes a word, as the battery's 1.9 MB
    return _HEAD + b"Subject: " + b"\r\n ".join(words) + b"\r\n\r\nhello\r\n"


def many_parts(count: int) -> bytes:
    part = b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n"
    return (
        _HEAD
        + b"Subject: parts\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        + part * count
        + b"--b--\r\n"
    )


def rfc2231_flood(count: int) -> bytes:
    params = b";\r\n ".join(b"filename*%d*=%%41%%42" % i for i in range(count))
    return (
        _HEAD
        + b"Subject: flood\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
        + b"Content-Type: application/octet-stream\r\nContent-Disposition: attachment; "
        + params
        + b"\r\n\r\nxx\r\n--b--\r\n"
    )


def unclosed_boundaries(count: int) -> bytes:
    nest = b"".join(
        b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i)
        for i in range(count)
    )
    return _HEAD + b"Subject: boundaries\r\n" + nest + b"Content-Type: text/plain\r\n\r\nx\r\n"


def deep_nesting(depth: int) -> bytes:
    body = b"Content-Type: text/plain\r\n\r\nhello\r\n"
    for i in range(depth):
        body = (
            b"Content-Type: multipart/mixed; boundary=d%d\r\n\r\n--d%d\r\n" % (i, i)
            + body
            + b"--d%d--\r\n" % i
        )
    return _HEAD + b"Subject: nesting\r\n" + body


def header_count(count: int) -> bytes:
    return _HEAD + b"Subject: headers\r\n" + b"X-Filler: y\r\n" * count + b"\r\nhello\r\n"


def long_header_line(size: int) -> bytes:
    return _HEAD + b"Subject: " + b"a" * size + b"\r\n\r\nhello\r\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _gps_exif() -> bytes:
    from PIL import Image

    ex = Image.Exif()
    ex[0x010F] = "Camera maker"
    ex[0x0110] = "Camera model"
    ex[0x8825] = {1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 36.0)}
    return ex.tobytes()


@functools.cache
def big_png(width: int, height: int, color: int, depth: int = 8) -> bytes:
    """A PNG whose pixels are zeros (2 MB on the wire), metadata after the pixel data."""
    per_pixel = {0: 1, 2: 3}[color] * depth / 8
    row = bytes(1 + int(width * per_pixel + 0.99))
    z = zlib.compressobj(1)
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", idat)
        + _chunk(b"eXIf", _gps_exif().removeprefix(b"Exif\x00\x00"))
        + _chunk(b"IEND", b"")
    )


@functools.cache
def camera_tiff(width: int = 10_000, height: int = 10_000, maker_note: int = 4 << 20) -> bytes:
    """A deflate TIFF with camera tags (make, model, GPS, a large maker note): every strip
    points at the same compressed rows, so it is small on the wire."""
    rows = 100
    strip = zlib.compress(bytes(width * 3 * rows), 1)
    strips = height // rows
    entries: list[tuple[int, int, int, bytes]] = []  # tag, type, count, value bytes
    make, model = b"Camera maker\x00", b"Camera model\x00"
    gps = struct.pack("<H", 1) + struct.pack("<HHI4s", 1, 2, 2, b"N\x00\x00\x00") + b"\0\0\0\0"
    layout: list[bytes] = []
    data_at = 8

    def put(blob: bytes) -> int:
        nonlocal data_at
        at = data_at
        layout.append(blob + (b"\0" if len(blob) % 2 else b""))
        data_at += len(layout[-1])
        return at

    strip_at = put(strip)
    offsets = put(struct.pack(f"<{strips}I", *([strip_at] * strips)))
    counts = put(struct.pack(f"<{strips}I", *([len(strip)] * strips)))
    bits = put(struct.pack("<3H", 8, 8, 8))
    make_at, model_at = put(make), put(model)
    note_at = put(b"N" * maker_note)
    gps_at = put(gps)
    entries = [
        (256, 4, 1, struct.pack("<I", width)),
        (257, 4, 1, struct.pack("<I", height)),
        (258, 3, 3, struct.pack("<I", bits)),
        (259, 3, 1, struct.pack("<HH", 8, 0)),
        (262, 3, 1, struct.pack("<HH", 2, 0)),
        (271, 2, len(make), struct.pack("<I", make_at)),
        (272, 2, len(model), struct.pack("<I", model_at)),
        (273, 4, strips, struct.pack("<I", offsets)),
        (277, 3, 1, struct.pack("<HH", 3, 0)),
        (278, 4, 1, struct.pack("<I", rows)),
        (279, 4, strips, struct.pack("<I", counts)),
        (34853, 4, 1, struct.pack("<I", gps_at)),
        (37500, 7, maker_note, struct.pack("<I", note_at)),
    ]
    ifd = struct.pack("<H", len(entries))
    ifd += b"".join(struct.pack("<HHI", t, k, c) + v for t, k, c, v in entries) + b"\0\0\0\0"
    return b"II*\x00" + struct.pack("<I", data_at) + b"".join(layout) + ifd


def with_image(data: bytes, subtype: str, name: str, *, forwarded: bool = False) -> bytes:
    import base64

    part = (
        f"Content-Type: image/{subtype}\r\nContent-Disposition: attachment; filename={name}\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n"
    ).encode() + base64.encodebytes(data).replace(b"\n", b"\r\n")
    if forwarded:  # inside an attached message
        inner = (
            b"From: someone@else.example\r\nSubject: fwd\r\n"
            b"Content-Type: multipart/mixed; boundary=in\r\n\r\n--in\r\n" + part + b"--in--\r\n"
        )
        part = b"Content-Type: message/rfc822\r\n\r\n" + inner
    return (
        _HEAD
        + b"Subject: photo\r\nContent-Type: multipart/mixed; boundary=out\r\n\r\n--out\r\n"
        + b"Content-Type: text/plain\r\n\r\nThe photo of the part you asked about.\r\n--out\r\n"
        + part
        + b"--out--\r\n"
    )


@dataclass(frozen=True)
class Shape:
    name: str
    make: Callable[[], bytes]
    code: int
    enhanced: str = ""
    names: str = ""  # a word the reply must contain (the limit's setting)


SHAPES = [
    Shape("subject_100k_encoded_words", lambda: subject_encoded_words(100_000), 552, "5.3.4",
          "max_header_field_bytes"),
    Shape("subject_3k_encoded_words", lambda: subject_encoded_words(3_000), 554, "5.6.0",
          "max_encoded_words_per_field"),
    Shape("parts_50k_tiny", lambda: many_parts(50_000), 554, "5.6.0", "max_parts"),
    Shape("parts_200k_7mb", lambda: many_parts(200_000), 554, "5.6.0", "max_parts"),
    Shape("rfc2231_flood", lambda: rfc2231_flood(20_000), 552, "5.3.4", "max_header_field"),
    Shape("rfc2231_flood_small", lambda: rfc2231_flood(2_000), 554, "5.6.0", "max_mime_params"),
    Shape("unclosed_boundaries_2000", lambda: unclosed_boundaries(2_000), 554, "5.6.0",
          "max_depth"),
    Shape("deep_nesting_200", lambda: deep_nesting(200), 554, "5.6.0", "max_depth"),
    Shape("header_count_100k", lambda: header_count(100_000), 554, "5.6.0", "max_header_fields"),
    Shape("header_line_2mb", lambda: long_header_line(2_000_000), 552, "5.3.4",
          "max_header_line_bytes"),
    Shape("png_13000x13000", lambda: with_image(big_png(13_000, 13_000, 2), "png", "a.png"), 250),
    Shape("tiff_camera_tags", lambda: with_image(camera_tiff(), "tiff", "scan.tiff"), 250),
    Shape("png_bomb_in_forwarded_part",
          lambda: with_image(big_png(12_000, 12_000, 0), "png", "b.png", forwarded=True), 250),
]


# -- the probe: a normal client next to the hostile one ------------------------------------


@dataclass
class Probe:
    banners: list[float] = field(default_factory=list)
    transactions: list[float] = field(default_factory=list)
    codes: list[int] = field(default_factory=list)

    async def once(self, port: int, alias: str) -> None:
        data = message(BUYER, alias, "Where is my parcel?").as_bytes()
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False, timeout=30)
        t0 = time.perf_counter()
        await client.connect()
        self.banners.append(time.perf_counter() - t0)
        try:
            t1 = time.perf_counter()
            await client.sendmail(BUYER, [alias], data)
            self.transactions.append(time.perf_counter() - t1)
            self.codes.append(250)
        except aiosmtplib.SMTPResponseException as err:
            self.codes.append(err.code)
        finally:
            with contextlib.suppress(Exception):
                await client.quit()

    async def run_until(self, port: int, alias: str, done: asyncio.Event) -> None:
        while True:
            await self.once(port, alias)
            if done.is_set() and len(self.codes) >= MIN_PROBES:
                return


def send_raw(port: int, sender: str, rcpt: str, raw: bytes) -> tuple[int, str]:
    """A plain-socket SMTP client for the hostile message, run in a thread: the test's own
    client must not hold the event loop the relay runs on (aiosmtplib dot-stuffs 7 MB in
    one call on the loop), or the probe would measure the client."""
    import socket

    data = (b"." + raw if raw.startswith(b".") else raw).replace(b"\r\n.", b"\r\n..")
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        f = sock.makefile("rb")

        def reply() -> tuple[int, str]:
            while True:
                line = f.readline().decode()
                if line[3:4] != "-":
                    return int(line[:3]), line[4:].strip()

        reply()
        for cmd in (b"EHLO hostile.test", f"MAIL FROM:<{sender}>".encode(),
                    f"RCPT TO:<{rcpt}>".encode(), b"DATA"):
            sock.sendall(cmd + b"\r\n")
            code, text = reply()
            if code >= 400:
                return code, text
        sock.sendall(data + (b"" if data.endswith(b"\r\n") else b"\r\n") + b".\r\n")
        code, text = reply()
        sock.sendall(b"QUIT\r\n")
        return code, text


async def hostile_with_probe(
    port: int, order: Any, raw: bytes, *, sender: str = SELLER, rcpt: str = ""
) -> tuple[int, str, Probe]:
    """Send ``raw`` (from the seller to the buyer alias unless told otherwise) while the
    buyer writes normal mail to the seller."""
    alias = order.seller_alias
    probe = Probe()
    done = asyncio.Event()
    await workers_ready()  # start-up cost is not the hostile message's
    await probe.once(port, alias)  # warm: first-use costs are not the hostile message's
    probe = Probe()
    probing = asyncio.create_task(probe.run_until(port, alias, done))
    try:
        code, text = await asyncio.to_thread(
            send_raw, port, sender, rcpt or order.buyer_alias, raw
        )
    finally:
        done.set()
    await probing
    return code, text, probe


def assert_served(probe: Probe) -> None:
    assert len(probe.codes) >= MIN_PROBES and set(probe.codes) == {250}, probe.codes
    for what, times in (("banner", probe.banners), ("transaction", probe.transactions)):
        shown = ", ".join(f"{t:.3f}" for t in times)
        assert statistics.median(times) < MEDIAN_MAX, f"{what} median over 200 ms: {shown}"
        assert max(times) < SINGLE_MAX, f"a {what} took over {SINGLE_MAX} s: {shown}"


@pytest.mark.parametrize("shape", SHAPES, ids=[s.name for s in SHAPES])
async def test_hostile_shape_refused_while_others_are_served(make_settings, sink, shape) -> None:
    raw = shape.make()
    settings = make_settings(delivery={"smarthost": f"127.0.0.1:{sink.port}"})
    async with running_relay(settings) as relay:
        order = await create_order(relay)
        code, text, probe = await hostile_with_probe(relay.port, order, raw)
        assert code == shape.code, (code, text)
        if shape.code != 250:
            assert text.startswith(shape.enhanced), text
            assert shape.names in text, text
        if shape.code == 250:  # an image over the pixel budget is removed, never decoded
            rows = await search(relay.engine, SearchFilter(order_id=ORDER))
            hostile = [r for r in rows if r["verdict"] != "deliver"]
            assert hostile, rows
            findings = hostile[0]["findings"]
            assert any("megapixels" in f.get("excerpt", "") for f in findings), findings
        assert_served(probe)


async def test_cpu_budget_overrun_is_a_permanent_refusal(make_settings, sink) -> None:
    """A message within every structural limit that still costs more CPU than its budget
    is stopped and refused 554 naming the setting, never 451 (a retry would repeat it)."""
    settings = make_settings(
        delivery={"smarthost": f"127.0.0.1:{sink.port}"}, message={"cpu_budget": "0.01s"}
    )
    text = ("Some words about the parcel and the weather, 12:30 wrote. " * 14_000)[:900_000]
    async with running_relay(settings) as relay:
        order = await create_order(relay)
        code, reply = await send(
            relay.port, SELLER, [order.buyer_alias],
            message(SELLER, order.buyer_alias, "long", text).as_bytes(),
        )  # fmt: skip
        assert code == 554 and reply.startswith("5.6.0"), (code, reply)
        assert "cpu_budget" in reply


def test_structure_scan_is_linear_and_accepts_real_structure() -> None:
    """The pre-scan costs milliseconds on the largest shapes and passes nested real MIME."""
    from relay.mail.limits import StructureLimits, check

    ok = deep_nesting(5)
    assert check(ok, StructureLimits()) is None
    forwarded = with_image(b"GIF89a" + bytes(100), "gif", "x.gif", forwarded=True)
    assert check(forwarded, StructureLimits()) is None
    for raw in (many_parts(200_000), header_count(100_000), subject_encoded_words(100_000)):
        t = time.process_time()
        assert check(raw, StructureLimits()) is not None
        assert time.process_time() - t < 0.5


async def test_memory_budget_overrun_is_a_permanent_refusal(make_settings, sink) -> None:
    """At the default settings (content checks in worker processes) a message whose
    check needs more memory than its budget is refused 552 5.3.4 naming the setting,
    never 451, and the relay serves the next message at once. A TIFF with camera tags
    under the pixel budget must be decoded to strip them (25 MP: ~75 MB a copy); the
    budget here is 64 MB."""
    settings = make_settings(
        delivery={"smarthost": f"127.0.0.1:{sink.port}"}, message={"memory_budget_mb": 64}
    )
    assert settings.policy.workers > 0  # the default mode
    raw = with_image(camera_tiff(5_000, 5_000, maker_note=1024), "tiff", "scan.tiff")
    async with running_relay(settings) as relay:
        order = await create_order(relay)
        code, text, probe = await hostile_with_probe(relay.port, order, raw)
        assert code == 552 and text.startswith("5.3.4"), (code, text)
        assert "memory_budget_mb" in text, text
        assert_served(probe)
        after = await send(
            relay.port, BUYER, [order.seller_alias],
            message(BUYER, order.seller_alias, "still there?").as_bytes(),
        )  # fmt: skip
        assert after[0] == 250, after


OTHER_PATH_SHAPES = [SHAPES[2], SHAPES[8], SHAPES[1]]  # parts, header fields, encoded-words


@pytest.mark.parametrize("shape", OTHER_PATH_SHAPES, ids=[s.name for s in OTHER_PATH_SHAPES])
async def test_postmaster_and_bounce_paths_scan_structure_first(make_settings, sink, shape) -> None:
    """postmaster@ (anyone may write) and a signed return path (a bounce about one of our
    deliveries) are intake paths too: the same structure scan, off the loop, refuses the
    same shapes with the same replies while others are served."""
    from tests.core.test_bounces import SECRET, delivered_once

    settings = make_settings(
        delivery={"smarthost": f"127.0.0.1:{sink.port}"},
        relay={"postmaster": "ops@marketplace-ops.example"},
        bounce={"secret": SECRET},
    )
    raw = shape.make()
    async with running_relay(settings) as relay:
        order, return_path = await delivered_once(relay, sink)
        for rcpt in (f"postmaster@{DOMAIN}", return_path):
            code, text, probe = await hostile_with_probe(
                relay.port, order, raw, sender="", rcpt=rcpt
            )
            assert (code, text[:5]) == (shape.code, shape.enhanced), (rcpt, code, text)
            assert shape.names in text, text
            assert_served(probe)
