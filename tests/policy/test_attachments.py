"""Attachments: dangerous types refused, animations and cards removed, EXIF stripped."""

from __future__ import annotations

import io

from PIL import Image

from relay.policy.evaluation import decoded_text
from tests.policy.helpers import ctx, make

BODY = "Hello, the replacement part left today, photo attached. Kind regards, the shop"


def _jpeg(exif: bool) -> bytes:
    im = Image.new("RGB", (64, 48), (200, 30, 30))
    buf = io.BytesIO()
    if exif:
        ex = Image.Exif()
        ex[0x010F] = "Apple"
        ex[0x0110] = "iPhone 15 Pro"
        ex[0x8825] = {1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 36.0)}
        im.save(buf, "JPEG", exif=ex)
    else:
        im.save(buf, "JPEG")
    return buf.getvalue()


def _gif(frames: int) -> bytes:
    ims = [Image.new("RGB", (16, 16), (i * 80, 0, 255 - i * 80)) for i in range(frames)]
    buf = io.BytesIO()
    ims[0].save(buf, "GIF", save_all=frames > 1, append_images=ims[1:], duration=100, loop=0)
    return buf.getvalue()


def test_exif_is_stripped_and_photo_kept(engine):
    data = _jpeg(exif=True)
    assert b"iPhone 15 Pro" in data
    v = engine.evaluate(make(BODY, attachments=[(data, "image", "jpeg", "photo.jpg")]),
                        ctx("buyer-to-seller"))
    assert v.action == "redact"
    assert any(f.kind == "image_metadata" for f in v.findings)
    text = decoded_text(v.message)
    assert "iPhone 15 Pro" not in text and "JFIF" in text


def test_photo_without_exif_is_delivered(engine):
    v = engine.evaluate(make(BODY, attachments=[(_jpeg(False), "image", "jpeg", "p.jpg")]),
                        ctx("buyer-to-seller"))
    assert v.action == "deliver"


def test_animated_gif_removed_static_gif_kept(engine):
    v = engine.evaluate(make(BODY, attachments=[(_gif(3), "image", "gif", "thanks.gif")]), ctx())
    assert v.action == "redact" and any(f.kind == "attachment_removed" for f in v.findings)
    assert "GIF89a" not in decoded_text(v.message)
    v = engine.evaluate(make(BODY, attachments=[(_gif(1), "image", "gif", "diagram.gif")]), ctx())
    assert v.action == "deliver"


def test_vcard_removed(engine):
    card = b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Jan\r\nTEL:+31 30 799 4182\r\nEND:VCARD\r\n"
    v = engine.evaluate(make(BODY, attachments=[(card, "text", "vcard", "jan.vcf")]), ctx())
    assert any(f.kind == "attachment_removed" for f in v.findings)
    assert "BEGIN:VCARD" not in decoded_text(v.message)


def test_executable_disguised_as_jpeg_rejected(engine):
    exe = b"MZ\x90\x00" + b"\x00" * 200 + b"This program cannot be run in DOS mode"
    v = engine.evaluate(make(BODY, attachments=[(exe, "image", "jpeg", "foto.jpg")]),
                        ctx("buyer-to-seller"))
    assert v.action == "reject" and v.message is None
    assert v.reject_findings[0].kind == "dangerous_attachment"
    assert "dangerous_attachment" in v.reason and "foto" not in v.reason


def test_double_extension_and_lying_type_rejected(engine):
    js = b"var sh = new ActiveXObject('WScript.Shell');"
    v = engine.evaluate(make(BODY, attachments=[(js, "application", "pdf", "bolla.pdf.js")]), ctx())
    assert v.action == "reject"
    v = engine.evaluate(make(BODY, attachments=[(b"plain words", "application", "pdf", "a.pdf")]),
                        ctx())
    assert v.action == "reject"


def test_attachment_size_limit_counts_decoded_bytes(engine):
    pdf = b"%PDF-1.4\n" + b"0" * 9_400_000
    v = engine.evaluate(make(BODY, attachments=[(pdf, "application", "pdf", "guide.pdf")]), ctx())
    assert v.action == "deliver"
    v = engine.evaluate(make(BODY, attachments=[(pdf, "application", "pdf", "a.pdf"),
                                                (pdf, "application", "pdf", "b.pdf")]), ctx())
    assert v.action == "reject"
    assert v.reject_findings[0].kind == "attachment_too_large"


def test_contact_in_attachment_filename_redacted(engine):
    pdf = b"%PDF-1.4\n%%EOF\n"
    name = "invoice call 0151 23456789.pdf"
    v = engine.evaluate(make(BODY, attachments=[(pdf, "application", "pdf", name)]),
                        ctx("buyer-to-seller", buyer_locale="de-DE"))
    assert any(f.kind == "phone_number" and f.where.startswith("attachment:") for f in v.findings)
    assert "23456789" not in decoded_text(v.message)


def test_decorative_seller_image_removed(engine):
    png = io.BytesIO()
    Image.new("RGB", (32, 8), (0, 0, 0)).save(png, "PNG")
    att = [(png.getvalue(), "image", "png", "shop-logo.png")]
    v = engine.evaluate(make(BODY, attachments=att), ctx())
    assert any(f.kind == "attachment_removed" for f in v.findings)
    assert engine.evaluate(make(BODY, attachments=att), ctx("buyer-to-seller")).action == "deliver"


def test_zip_with_executable_rejected(engine):
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("invoice.pdf.exe", b"MZ")
    v = engine.evaluate(make(BODY, attachments=[(buf.getvalue(), "application", "zip", "a.zip")]),
                        ctx())
    assert v.action == "reject"


def test_png_saved_as_jpg_is_a_harmless_mislabel(engine):
    png = io.BytesIO()
    Image.new("RGB", (16, 16), (9, 9, 9)).save(png, "PNG")
    att = [(png.getvalue(), "image", "jpeg", "photo.jpg")]
    assert engine.evaluate(make(BODY, attachments=att), ctx("buyer-to-seller")).action == "deliver"
    bz = [(b"BZh91AY&SY", "application", "x-bzip2", "notes.txt.bz2")]
    assert engine.evaluate(make(BODY, attachments=bz), ctx("buyer-to-seller")).action == "deliver"
