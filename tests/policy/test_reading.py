"""Attachments read (issue 12, step 4): PDF, DOCX, ODT, iCalendar and images by OCR are
judged by the body's rules, within a budget; what cannot be read is held."""

from __future__ import annotations

import io
import zipfile

import pytest

from relay.policy import doctext
from relay.policy.evaluation import decoded_text
from tests.policy.cases import make_cases as mc
from tests.policy.helpers import ctx, make

BODY = "Hello, the document is attached. Kind regards, the shop"
needs_ocr = pytest.mark.skipif(doctext.tesseract() is None,
                               reason="tesseract not installed (apt-get install tesseract-ocr)")


def _kinds(v, action="redact"):
    return {f.kind for f in v.findings if f.action == action}


def test_pdf_text_with_an_address_removes_the_pdf(engine):
    pdf = mc._pdf("Contact sheet\nWrite to kate.miller77@gmail.com for spare parts.")
    v = engine.evaluate(make(BODY, attachments=[(pdf, "application", "pdf", "sheet.pdf")]),
                        ctx())
    assert "email_address" in _kinds(v) and v.action == "redact"
    assert "%PDF" not in decoded_text(v.message)
    assert "[attachment removed]" in decoded_text(v.message) or b"sheet.pdf" not in v.message


def test_clean_pdf_is_delivered_and_timed(engine):
    pdf = mc._pdf("Manual\nStep 1: unpack.\nStep 2: plug in.")
    v = engine.evaluate(make(BODY, attachments=[(pdf, "application", "pdf", "m.pdf")]), ctx())
    assert v.action == "deliver", v.findings
    assert "doc_ms" in v.timings and "ocr_ms" in v.timings


def test_odt_and_ics_are_read(engine):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("mimetype", "application/vnd.oasis.opendocument.text")
        zf.writestr("content.xml", '<?xml version="1.0"?><office:document-content xmlns:'
                    'office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:text='
                    '"urn:oasis:names:tc:opendocument:xmlns:text:1.0"><office:body><text:p>'
                    'Ring me: +44 7700 900461</text:p></office:body></office:document-content>')
    odt = buf.getvalue()
    v = engine.evaluate(make(BODY, attachments=[(odt, "application",
                                                 "vnd.oasis.opendocument.text", "n.odt")]),
                        ctx())
    assert "phone_number" in _kinds(v)
    ics = (b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nSUMMARY:Delivery slot\r\n"
           b"ORGANIZER:mailto:tom.berg77@gmail.com\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
    v = engine.evaluate(make(BODY, attachments=[(ics, "text", "calendar", "slot.ics")]), ctx())
    assert "email_address" in _kinds(v)
    assert "tom.berg77@gmail.com" not in decoded_text(v.message)


def test_attachment_over_the_reading_budget_is_held(tmp_path):
    from relay.policy import PolicyEngine
    from relay.policy.config import shipped_dir

    src = (shipped_dir() / "default.toml").read_text()
    src = src.replace('dir = "lexicons"', f'dir = "{shipped_dir() / "lexicons"}"')
    src = src.replace("max_bytes = 16000000", "max_bytes = 100")
    (tmp_path / "p.toml").write_text(src)
    eng = PolicyEngine.load(tmp_path / "p.toml")
    pdf = mc._pdf("Manual\nStep 1: unpack.")
    v = eng.evaluate(make(BODY, attachments=[(pdf, "application", "pdf", "m.pdf")]), ctx())
    assert v.action == "hold", v.findings
    assert v.message is not None and v.reason.startswith("Message held for review by rule ")
    assert any(f.action == "hold" for f in v.findings)


def test_unidentifiable_language_is_held(engine):
    body = ("Xq zrvv plk tmmr, qwv zzkp lorr vtnn mkkq prr, brx vollq ztt sne gharr. "
            "Vrokk tzam plirr, quvv nesk drallo. Zymm krett voll.")
    v = engine.evaluate(make(body), ctx(buyer_locale="de-DE"))
    assert v.action == "hold" and v.message is not None


@needs_ocr
def test_image_text_with_an_address_is_removed(engine):
    png = mc._png_text("Mail me: tom.berg77@gmail.com")
    v = engine.evaluate(make(BODY, attachments=[(png, "image", "png", "note.png")]), ctx())
    assert "email_address" in _kinds(v) and v.action == "redact"
    assert v.timings["ocr_ms"] > 0


@needs_ocr
def test_blurred_text_image_is_held_plain_photo_is_not(engine):
    png = mc._png_blurred("Please call our office tomorrow about the\nspare parts and the "
                          "delivery address\nfor your order number today")
    v = engine.evaluate(make(BODY, attachments=[(png, "image", "png", "d.png")]), ctx())
    assert v.action == "hold", v.findings
    v = engine.evaluate(make(BODY, attachments=[(mc._png_photo(), "image", "png", "p.png")]),
                        ctx("buyer-to-seller"))
    assert v.action == "deliver", v.findings
