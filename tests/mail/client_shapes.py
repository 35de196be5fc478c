"""Messages shaped like the big mail clients write them, for the anonymisation tests.

Each generator returns CRLF bytes as the client would hand them to its MTA (header order,
boundaries, Content-ID styles, transfer encodings and attached originals as these
clients produce them), plus the trace headers the sender's own MX adds to an original
that is later attached ("attach original", "forward as attachment").
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


@dataclass(frozen=True)
class Person:
    name: str
    address: str

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2]


def _tok(seed: str, n: int = 12) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()[:n]


def _b64(data: bytes) -> bytes:
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


def _qp(text: str) -> bytes:
    lf = text.replace("\r\n", "\n").encode()
    return binascii.b2a_qp(lf, istext=True).replace(b"\n", b"\r\n")


def _crlf(text: str) -> bytes:
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode()


def received_original(writer: Person, reader: Person, alias: str, *, seed: str) -> bytes:
    """A message as it sat in ``reader``'s mailbox: written by the relay on ``writer``'s
    behalf (alias), delivered to the reader's real address, with every trace field the
    reader's MX and mailbox add. What "attach original" attaches."""
    t = _tok(seed)
    r = reader.address
    return _crlf(
        f"Return-Path: <bounce+{t}.x@relay.example>\n"
        f"Delivered-To: {r}\n"
        f"X-Original-To: {r}\n"
        f"Received: from mx.relay.example (mx.relay.example [192.0.2.10])\n"
        f"\tby mx1.{reader.domain} (Postfix) with ESMTPS id {t.upper()}\n"
        f"\tfor <{r}>; Mon, 23 Nov 2026 10:00:00 +0000 (UTC)\n"
        f"Authentication-Results: mx1.{reader.domain}; dkim=pass header.d=relay.example;\n"
        f"\tspf=pass smtp.mailfrom=relay.example; dmarc=pass header.from=relay.example;\n"
        f"\tarc=none smtp.remote-ip=192.0.2.10 (envelope-to {r})\n"
        f"ARC-Seal: i=1; a=rsa-sha256; d={reader.domain}; s=arc; cv=none; b=abc\n"
        f"ARC-Authentication-Results: i=1; mx1.{reader.domain}; dkim=pass\n"
        f"DKIM-Signature: v=1; a=rsa-sha256; d={reader.domain}; s=s1; h=from:to; bh=x; b=y\n"
        f"X-Forwarded-To: {r}\n"
        f"X-Forwarded-For: {r} {reader.name.split()[0].lower()}@{reader.domain}\n"
        f"List-Id: <orders.{reader.domain}>\n"
        f"Disposition-Notification-To: {r}\n"
        f"Return-Receipt-To: {r}\n"
        f'From: "{writer.name} via Marketplace" <{alias}>\n'
        f'To: "{reader.name}" <{r}>\n'
        f"Cc: Accounts <accounts@{reader.domain}>, friend@third.example\n"
        f"Reply-To: {alias}\n"
        f"Sender: {r}\n"
        f"Subject: Question about order 113-4829301-5520417\n"
        f"Date: Mon, 23 Nov 2026 10:00:00 +0000\n"
        f"Message-ID: <{t}@mx1.{reader.domain}>\n"
        f"References: <{t}.orig@{reader.domain}>\n"
        f"MIME-Version: 1.0\n"
        f'Content-Type: text/plain; charset="utf-8"\n'
        f"Content-Transfer-Encoding: 7bit\n"
        f"\n"
        f"Hello, is the blue jacket still available in size M?\n"
    )


def _head(writer: Person, to: str, subject: str, msgid: str, extra: str) -> str:
    return (
        f"From: {writer.name} <{writer.address}>\n"
        f"To: {to}\n"
        f"Subject: {subject}\n"
        f"Date: Mon, 23 Nov 2026 11:00:00 +0100\n"
        f"Message-ID: <{msgid}>\n"
        f"{extra}"
        f"MIME-Version: 1.0\n"
    )


def thunderbird(writer: Person, to: str, *, seed: str = "tb") -> bytes:
    """multipart/alternative > text/plain + multipart/related (HTML + inline image whose
    Content-ID is ``part1.X.Y@<writer's domain>``, as Thunderbird builds it)."""
    t = _tok(seed)
    cid = f"part1.{t[:8]}.{t[8:12]}@{writer.domain}"
    b1, b2 = f"------------{t}A0", f"------------{t}B1"
    head = _head(
        writer, to, "Photo of the jacket", f"{t}-1111@{writer.domain}",
        "User-Agent: Mozilla Thunderbird\nContent-Language: en-US\n",
    )  # fmt: skip
    return (
        _crlf(
            head + f'Content-Type: multipart/alternative;\n boundary="{b1}"\n\n'
            "This is a multi-part message in MIME format.\n"
            f"--{b1}\nContent-Type: text/plain; charset=UTF-8; format=flowed\n"
            "Content-Transfer-Encoding: 7bit\n\nHere is a photo of the jacket.\n\n"
            f'--{b1}\nContent-Type: multipart/related;\n boundary="{b2}"\n\n'
            f"--{b2}\nContent-Type: text/html; charset=UTF-8\nContent-Transfer-Encoding: 7bit\n\n"
            "<!DOCTYPE html>\n<html><body><p>Here is a photo of the jacket.</p>\n"
            f'<img src="cid:{cid}" alt="jacket"></body></html>\n\n'
            f'--{b2}\nContent-Type: image/png; name="jacket.png"\n'
            f'Content-Disposition: inline; filename="jacket.png"\nContent-ID: <{cid}>\n'
            "Content-Transfer-Encoding: base64\n\n"
        )
        + _b64(PNG)
        + _crlf(f"\n--{b2}--\n\n--{b1}--\n")
    )


def gmail(writer: Person, to: str, *, seed: str = "gm") -> bytes:
    """multipart/related > multipart/alternative (QP text + QP HTML with gmail_quote) +
    an image with ``Content-ID: <ii_...>`` and ``X-Attachment-Id``; plus, as Gmail's
    "forward as attachment" does, the original as base64 ``message/rfc822``."""
    t = _tok(seed)
    ii = f"ii_{t[:10]}"
    b0, b1, b2 = f"000000000000{t}0a", f"000000000000{t}1b", f"000000000000{t}2c"
    html = (
        '<div dir="ltr">Yes, it is. See the picture.<br>'
        f'<img src="cid:{ii}" alt="image.png" width="1" height="1"><br></div><br>'
        '<div class="gmail_quote"><div dir="ltr" class="gmail_attr">On Mon, Nov 23, 2026 '
        'the buyer wrote:<br></div><blockquote class="gmail_quote">Is it available?'
        "</blockquote></div>\n"
    )
    head = _head(writer, to, "Re: Question about order", f"CAF{t}=x@mail.gmail.com",
                 f"X-Gm-Message-State: AOJu0Y{t}\nX-Google-Smtp-Source: AGHT+{t}\n")  # fmt: skip
    original = received_original(
        Person("Buyer", "b-unknown@relay.example"), writer, f"b-{t[:20]}@relay.example",
        seed=seed,
    )  # fmt: skip
    return (
        _crlf(
            head + f'Content-Type: multipart/mixed; boundary="{b0}"\n\n'
            f'--{b0}\nContent-Type: multipart/related; boundary="{b1}"\n\n'
            f'--{b1}\nContent-Type: multipart/alternative; boundary="{b2}"\n\n'
            f'--{b2}\nContent-Type: text/plain; charset="UTF-8"\n'
            "Content-Transfer-Encoding: quoted-printable\n\n"
        )
        + _qp("Yes, it is. See the picture.\n[image: image.png]\n\n> Is it available?\n")
        + _crlf(
            f'\n--{b2}\nContent-Type: text/html; charset="UTF-8"\n'
            "Content-Transfer-Encoding: quoted-printable\n\n"
        )
        + _qp(html)
        + _crlf(
            f'\n--{b2}--\n\n--{b1}\nContent-Type: image/png; name="image.png"\n'
            f'Content-Disposition: inline; filename="image.png"\nContent-ID: <{ii}>\n'
            f"X-Attachment-Id: {ii}\nContent-Transfer-Encoding: base64\n\n"
        )
        + _b64(PNG)
        + _crlf(
            f'\n--{b1}--\n\n--{b0}\nContent-Type: message/rfc822; name="original.eml"\n'
            'Content-Disposition: attachment; filename="original.eml"\n'
            "Content-Transfer-Encoding: base64\n\n"
        )
        + _b64(original)
        + _crlf(f"\n--{b0}--\n")
    )


def apple_mail(writer: Person, to: str, *, seed: str = "am", vcard: bool = True) -> bytes:
    """Apple-Mail=_ boundaries, a base64 HTML part whose ``cid:`` URL is percent-encoded,
    ``Content-Id`` with the writer's domain, and the writer's vCard attached."""
    t = _tok(seed, 32).upper()
    uuid = f"{t[:8]}-{t[8:12]}-{t[12:16]}-{t[16:20]}-{t[20:32]}"
    cid = f"{uuid}@{writer.domain}"
    b1, b2 = f"Apple-Mail=_{uuid}", f"Apple-Mail=_{uuid[::-1]}"
    html = (
        '<html><head><meta http-equiv="content-type" content="text/html; charset=utf-8">'
        '</head><body style="overflow-wrap: break-word;">The parcel left today.<br>'
        f'<img apple-inline="yes" id="{uuid}" src="cid:{cid.replace("@", "%40")}">'
        "</body></html>"
    )
    card = (
        f"BEGIN:VCARD\r\nVERSION:3.0\r\nN:{writer.name};;;\r\nFN:{writer.name}\r\n"
        f"EMAIL;type=INTERNET;type=WORK;type=pref:{writer.address}\r\nEND:VCARD\r\n"
    )
    head = _head(writer, to, "Your parcel", f"{uuid}@{writer.domain}",
                 "X-Mailer: Apple Mail (2.3774.200.91.1.1)\n")  # fmt: skip
    return (
        _crlf(
            head + f'Content-Type: multipart/mixed;\n\tboundary="{b1}"\n\n\n'
            f'--{b1}\nContent-Type: multipart/related;\n\ttype="text/html";\n'
            f'\tboundary="{b2}"\n\n\n--{b2}\nContent-Transfer-Encoding: base64\n'
            "Content-Type: text/html;\n\tcharset=utf-8\n\n"
        )
        + _b64(html.encode())
        + _crlf(
            f"--{b2}\nContent-Transfer-Encoding: base64\nContent-Disposition: inline;\n"
            f"\tfilename=parcel.png\nContent-Type: image/png;\n\tx-unix-mode=0644;\n"
            f'\tname="parcel.png"\nContent-Id: <{cid}>\n\n'
        )
        + _b64(PNG)
        + _crlf(
            f"\n--{b2}--\n\n--{b1}\nContent-Disposition: attachment;\n"
            f'\tfilename="{writer.name}.vcf"\nContent-Type: text/vcard;\n'
            f'\tname="{writer.name}.vcf"\nContent-Transfer-Encoding: 7bit\n\n'
        )
        + (card if vcard else "BEGIN:VCARD\r\nVERSION:3.0\r\nEND:VCARD\r\n").encode()
        + _crlf(f"\n--{b1}--\n")
    )


def outlook(
    writer: Person, to: str, reader: Person, alias: str, *, seed: str = "ol", inner_qp: bool = True
) -> bytes:
    """Outlook/Exchange: multipart/mixed > multipart/related > multipart/alternative with
    QP parts, ``image001.png@01DA...`` ids, Thread-Index and friends, and "attach
    original": the earlier message as ``message/rfc822``, trace fields and all, itself
    carrying a delivery report about a third party (a nested forward)."""
    t = _tok(seed).upper()
    img = f"image001.png@01DA{t[:4]}.{t[4:12]}"
    b0, b1, b2 = f"_004_AM0PR01MB{t}EURP_", f"_005_AM0PR01MB{t}EURP_", f"_006_AM0PR{t}_"
    html = (
        '<html xmlns:v="urn:schemas-microsoft-com:vml" xmlns:o="urn:schemas-microsoft-com'
        ':office:office"><head><meta name=Generator content="Microsoft Word 15"></head>'
        "<body lang=DE><div class=WordSection1><p class=MsoNormal>Guten Tag, anbei das "
        f'Foto.<o:p></o:p></p><p class=MsoNormal><img width=1 height=1 id="Bild_x0020_1" '
        f'src="cid:{img}"></p></div></body></html>'
    )
    original = received_original(reader, writer, alias, seed=seed)
    head = _head(
        writer, to, "AW: Question about order 113-4829301-5520417",
        f"AM0PR01MB{t}@AM0PR01MB{t}.eurprd01.prod.outlook.com",
        f"Thread-Topic: Question\nThread-Index: AQHa{t}==\nX-MS-Has-Attach: yes\n"
        f"X-MS-TNEF-Correlator:\nx-originating-ip: [198.51.100.23]\n"
        f"Content-Language: de-DE\nDisposition-Notification-To: {writer.address}\n",
    )  # fmt: skip
    return (
        _crlf(
            head + f'Content-Type: multipart/mixed;\n\tboundary="{b0}"\n\n'
            f'--{b0}\nContent-Type: multipart/related;\n\tboundary="{b1}";\n'
            f'\ttype="multipart/alternative"\n\n--{b1}\nContent-Type: multipart/alternative;\n'
            f'\tboundary="{b2}"\n\n--{b2}\nContent-Type: text/plain; charset="iso-8859-1"\n'
            "Content-Transfer-Encoding: quoted-printable\n\n"
        )
        + _qp(f"Guten Tag, anbei das Foto.\n\n[cid:{img}]\n")
        + _crlf(
            f'\n--{b2}\nContent-Type: text/html; charset="iso-8859-1"\n'
            "Content-Transfer-Encoding: quoted-printable\n\n"
        )
        + _qp(html)
        + _crlf(
            f'\n--{b2}--\n\n--{b1}\nContent-Type: image/png; name="image001.png"\n'
            f"Content-Description: image001.png\nContent-Disposition: inline;\n"
            f'\tfilename="image001.png"; size=70;\nContent-ID: <{img}>\n'
            f"Content-Location: https://outlook.{writer.domain}/owa/image001.png\n"
            "Content-Transfer-Encoding: base64\n\n"
        )
        + _b64(PNG)
        + _crlf(
            f"\n--{b1}--\n\n--{b0}\nContent-Type: message/rfc822\n"
            "Content-Disposition: attachment;\n"
            f'\tcreation-date="Mon, 23 Nov 2026 10:00:00 GMT"\n\n'
        )
        + forwarded_with_report(original, writer, seed=seed, qp=inner_qp)
        + _crlf(f"\n--{b0}--\n")
    )


def forwarded_with_report(inner: bytes, writer: Person, *, seed: str, qp: bool = True) -> bytes:
    """A message that itself forwards ``inner`` (QP-encoded message/rfc822) and a
    delivery report from the writer's MX (text/rfc822-headers + message/delivery-status)."""
    t = _tok(seed + "fw")
    b = f"=_fw{t}"
    return (
        _crlf(
            f"Received: from mail.{writer.domain} by mx.{writer.domain}; Mon, 23 Nov 2026\n"
            f"From: {writer.name} <{writer.address}>\nTo: {writer.address}\n"
            f"Subject: Fwd: Question\nMessage-ID: <{t}@{writer.domain}>\n"
            f'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="{b}"\n\n'
            f"--{b}\nContent-Type: text/plain\n\nFor the records.\n"
            f"--{b}\nContent-Type: message/rfc822\n"
            + ("Content-Transfer-Encoding: quoted-printable\n\n" if qp else "\n")
        )
        + (_qp(inner.decode()) if qp else inner)
        + _crlf(
            f"\n--{b}\nContent-Type: message/delivery-status\n\n"
            f"Reporting-MTA: dns; mx.{writer.domain}\nX-Postfix-Queue-ID: {t}\n"
            f"Received-From-MTA: dns; mail.{writer.domain}\n"
            f"Arrival-Date: Mon, 23 Nov 2026 10:00:00 +0000\n\n"
            f"Final-Recipient: rfc822; {writer.address}\n"
            f"Original-Recipient: rfc822;{writer.address}\n"
            f"X-Actual-Recipient: rfc822; friend@third.example\nAction: failed\nStatus: 5.1.1\n"
            f"Remote-MTA: dns; mx.{writer.domain}\n"
            f"Diagnostic-Code: smtp; 550 5.1.1 <{writer.address}>: unknown user\n\n"
            f"--{b}\nContent-Type: text/rfc822-headers\n\n"
            f"Return-Path: <{writer.address}>\nReceived: by mx.{writer.domain}\n"
            f"From: {writer.name} <{writer.address}>\nTo: friend@third.example\n"
            f"Subject: Test\nMessage-ID: <{t}.2@{writer.domain}>\n\n"
            f"--{b}--\n"
        )
    )
