"""Red team, from outside: where else can a party's real address or domain ride along?

Over real SMTP against a running relay with the shipped content policy, each message
below carries the writer's address or domain in one place a mail client or a curious
writer can put it (MIME parameters, filenames in every encoding, boundaries, part
descriptions, top-level fields outside the allowlist); the buyer's MX then refuses one
delivery quoting the buyer's address. Every delivered byte, every notice and every SMTP
reply is scanned (tests/mail/leakscan.py). A message the policy refuses is no leak; which
ones it refuses is recorded in the test's output.
"""

from __future__ import annotations

import base64
from urllib.parse import quote

from tests.helpers import BUYER, SELLER, create_order, running_relay, send
from tests.mail import client_shapes as shapes
from tests.mail.leakscan import leaks

SECRET = "ef" * 32
PNG = base64.encodebytes(shapes.PNG).replace(b"\n", b"\r\n").decode()


def _domain(address: str) -> str:
    return address.rpartition("@")[2]


def head(writer: str, to: str, subject: str = "Your order", extra: str = "") -> str:
    return (
        f"From: Writer <{writer}>\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Date: Mon, 23 Nov 2026 11:00:00 +0100\r\nMessage-ID: <r{abs(hash(subject))}@x.test>\r\n"
        f"MIME-Version: 1.0\r\n{extra}"
    )


def with_image(
    writer: str, to: str, part_head: str, *, boundary: str = "b0und", top: str = ""
) -> bytes:
    return (
        head(writer, to, extra=top)
        + f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n'
        f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        "Hello, a photo of the parcel as it left today is attached.\r\n"
        f"--{boundary}\r\n{part_head}Content-Transfer-Encoding: base64\r\n\r\n{PNG}"
        f"--{boundary}--\r\n"
    ).encode()


def cases(writer: str, to: str) -> list[tuple[str, bytes]]:
    addr, dom = writer, _domain(writer)
    b64name = base64.b64encode(f"{addr}.png".encode()).decode()
    pct = quote(f"{addr}.png", safe="")
    return [
        ("filename-plain",
         with_image(writer, to, f'Content-Type: image/png\r\nContent-Disposition: attachment; '
                                f'filename="{addr}.png"\r\n')),
        ("filename-rfc2231",
         with_image(writer, to, "Content-Type: image/png\r\nContent-Disposition: attachment; "
                                f"filename*=UTF-8''{pct}\r\n")),
        ("filename-rfc2231-continuation",
         with_image(writer, to, "Content-Type: image/png\r\nContent-Disposition: attachment;\r\n"
                                f" filename*0*=UTF-8''{pct[:9]};\r\n filename*1*={pct[9:]}\r\n")),
        ("filename-rfc2047",
         with_image(writer, to, "Content-Type: image/png\r\nContent-Disposition: attachment; "
                                f'filename="=?utf-8?b?{b64name}?="\r\n')),
        ("name-parameter",
         with_image(writer, to, f'Content-Type: image/png; name="photo from {dom}.png"\r\n')),
        ("name-parameter-rfc2047",
         with_image(writer, to, f'Content-Type: image/png; name="=?utf-8?b?{b64name}?="\r\n')),
        ("unknown-content-type-parameter",
         with_image(writer, to, f'Content-Type: image/png; x-unix-owner="{addr}"\r\n')),
        ("unknown-disposition-parameter",
         with_image(writer, to, f"Content-Type: image/png\r\nContent-Disposition: inline; "
                                f'x-sent-by="{addr}"\r\n')),
        ("content-description-address",
         with_image(writer, to, f"Content-Type: image/png\r\n"
                                f"Content-Description: from {addr}\r\n")),
        ("content-description-domain",
         with_image(writer, to, f"Content-Type: image/png\r\n"
                                f"Content-Description: {dom} photo\r\n")),
        ("boundary-with-address", with_image(writer, to, "Content-Type: image/png\r\n",
                                              boundary=f"=_Part_{addr}_1")),
        ("boundary-with-domain", with_image(writer, to, "Content-Type: image/png\r\n",
                                             boundary=f"{dom}-1700000000")),
        ("content-id-with-address", with_image(writer, to, f"Content-Type: image/png\r\n"
                                                           f"Content-ID: <{addr}>\r\n")),
        ("content-location", with_image(writer, to, f"Content-Type: image/png\r\n"
                                                    f"Content-Location: https://{dom}/p.png\r\n")),
        ("top-level-fields-outside-allowlist",
         with_image(writer, to, "Content-Type: image/png\r\n",
                    top=f"Organization: {dom}\r\nDisposition-Notification-To: {addr}\r\n"
                        f"Return-Receipt-To: {addr}\r\nX-Sender: {addr}\r\n"
                        f"Errors-To: {addr}\r\nList-Unsubscribe: <mailto:{addr}>\r\n"
                        f"Comments: {addr}\r\nKeywords: {dom}\r\n"
                        f"Resent-From: {addr}\r\nSender: {addr}\r\n")),
        ("top-level-content-type-parameter",
         (head(writer, to) + f'Content-Type: text/plain; charset=utf-8; x-owner="{addr}"\r\n\r\n'
          "Hello, your parcel left today.\r\n").encode()),
        ("date-comment",
         (head(writer, to).replace("+0100\r\n", f"+0100 ({addr})\r\n")
          + "Content-Type: text/plain; charset=utf-8\r\n\r\nHello, your parcel left today.\r\n")
         .encode()),
        ("mime-version-comment",
         (head(writer, to).replace("MIME-Version: 1.0", f"MIME-Version: 1.0 (sent by {addr})")
          + "Content-Type: text/plain; charset=utf-8\r\n\r\nHello, your parcel left today.\r\n")
         .encode()),
        ("auto-submitted-comment",
         (head(writer, to, extra=f"Auto-Submitted: auto-replied (from {dom})\r\n")
          + "Content-Type: text/plain; charset=utf-8\r\n\r\nHello, your parcel left today.\r\n")
         .encode()),
        ("part-cte-and-mime-version-comments",
         with_image(writer, to, f"MIME-Version: 1.0 ({addr})\r\nContent-Type: image/png\r\n")
         .replace(b"Content-Transfer-Encoding: base64\r\n",
                  f"Content-Transfer-Encoding: base64 ({addr})\r\n".encode())),
        ("attached-message-date-comment",
         (head(writer, to) + 'Content-Type: multipart/mixed; boundary="zz"\r\n\r\n'
          "--zz\r\nContent-Type: text/plain\r\n\r\nSee the attached note.\r\n"
          "--zz\r\nContent-Type: message/rfc822\r\n\r\n"
          f"From: {to}\r\nSubject: note\r\nDate: Mon, 23 Nov 2026 11:00:00 +0100 ({addr})\r\n"
          f"Auto-Submitted: auto-generated ({addr})\r\n\r\nA note.\r\n--zz--\r\n").encode()),
        ("subject-with-address",
         (head(writer, to, subject=f"Questions? write to {addr}")
          + "Content-Type: text/plain; charset=utf-8\r\n\r\nHello, your parcel left today.\r\n")
         .encode()),
        ("subject-encoded-address",
         (head(writer, to, subject="=?utf-8?b?" + base64.b64encode(f"Mail {addr}".encode())
               .decode() + "?=")
          + "Content-Type: text/plain; charset=utf-8\r\n\r\nHello, your parcel left today.\r\n")
         .encode()),
    ]  # fmt: skip


CASE_COUNT = 23


async def test_no_party_address_rides_along(make_settings, sink) -> None:
    settings = make_settings(
        delivery={"smarthost": f"127.0.0.1:{sink.port}"},
        limits={"per_order_day": 0, "proactive_per_order": 0},  # one order carries them all
    )
    settings = settings.model_copy(
        update={"bounce": settings.bounce.model_copy(update={"secret": SECRET})}
    )
    # The buyer's MX refuses one delivery quoting the buyer's address in three spellings
    # (the marker is in the body, which a notice never quotes).
    sink.data_reply = lambda data: (
        f"550 5.1.1 <{BUYER}>... {BUYER.upper()} unknown at mx.{_domain(BUYER)}"
        if b"BOUNCE-ME" in data
        else None
    )
    outcome: dict[str, str] = {}
    replies: list[str] = []
    async with running_relay(settings) as relay:
        order = await create_order(relay, buyer_name="Alice Buyer", seller_name="Shop GmbH")
        sent = 0
        for writer, alias in ((SELLER, order.buyer_alias), (BUYER, order.seller_alias)):
            built = cases(writer, alias)
            assert len(built) == CASE_COUNT
            for name, data in built:
                code, text = await send(relay.port, writer, [alias], data)
                replies.append(text)
                outcome[f"{writer.split('@')[0]}:{name}"] = f"{code} {text[:60]}"
                sent += code == 250
        bounce = (
            head(SELLER, order.buyer_alias, subject="Parcel")
            + "Content-Type: text/plain\r\n\r\nBOUNCE-ME parcel left.\r\n"
        ).encode()
        code, text = await send(relay.port, SELLER, [order.buyer_alias], bounce)
        assert code == 250, text
        got = await sink.wait_for(sent + 1, timeout=30)  # the notice to the seller
    print("\n".join(f"{k}: {v}" for k, v in outcome.items()))
    failures = []
    for item in got:
        reader = item.rcpt_tos[0]
        other = SELLER if reader == BUYER else BUYER
        found = leaks(item.data, [other, _domain(other)])
        if found:
            failures.append(f"to {reader}: {found}\n{item.data[:1500]!r}")
    for text in replies:
        assert SELLER not in text.lower() and BUYER not in text.lower(), text
    assert failures == [], "\n\n".join(failures)
    assert sent >= CASE_COUNT  # most of these are ordinary messages: they are delivered
