"""Attachment types by content (puremagic + container inspection) and an enforced allow-list
(issue 12, step 2): what the bytes are decides, not the name or the declared type."""

from __future__ import annotations

import io
import zipfile

import pytest

from relay.policy import attachments
from relay.policy.evaluation import decoded_text
from tests.policy.helpers import ctx, make

BODY = "Hello, the document you asked for is attached. Kind regards, the shop"


def _zip(members: dict[str, bytes], encrypt_flag: bool = False) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    raw = bytearray(buf.getvalue())
    if encrypt_flag:   # set the "encrypted" general-purpose bit as an encrypting zip tool does
        i = 0
        while (i := raw.find(b"PK\x03\x04", i)) != -1:
            raw[i + 6] |= 1
            i += 4
        i = 0
        while (i := raw.find(b"PK\x01\x02", i)) != -1:
            raw[i + 8] |= 1
            i += 4
    return bytes(raw)


_OOXML = {"[Content_Types].xml": b"<Types/>", "word/document.xml": b"<w:document/>"}
_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600


def _kinds(v) -> dict[str, str]:
    return {f.kind: f.action for f in v.findings}


@pytest.mark.parametrize("data, ctype, name", [
    (b"Rar!\x1a\x07\x01\x00" + b"\x00" * 200, "application", "vnd.rar"),
    (b"7z\xbc\xaf\x27\x1c" + b"\x00" * 200, "application", "x-7z-compressed"),
    (b"<!DOCTYPE html><html><body><p>Invoice</p></body></html>", "text", "html"),
])
def test_not_allowed_types_are_removed(engine, data, ctype, name):
    fname = {"vnd.rar": "files.rar", "x-7z-compressed": "files.7z", "html": "invoice.html"}[name]
    v = engine.evaluate(make(BODY, attachments=[(data, ctype, name, fname)]), ctx())
    assert _kinds(v).get("attachment_removed") == "redact", v.findings
    assert v.action == "redact"
    assert data[:6].decode("latin-1") not in decoded_text(v.message)


@pytest.mark.parametrize("data, ctype, name, fname", [
    (b"MSCF\x00\x00\x00\x00" + b"\x00" * 200, "application", "octet-stream", "setup.cab"),
    (b"\xe4\x52\x5c\x7b\x8c\xd8\xa7\x4d\xae\xb1\x53\x78\xd0\x29\x96\xd3" + b"\x00" * 200,
     "application", "octet-stream", "notes.one"),
    (b"\x00" * 32769 + b"CD001" + b"\x00" * 100, "application", "octet-stream", "photos.dat"),
    (b"conectix" + b"\x00" * 200, "application", "octet-stream", "disk.bin"),
    (_zip({**_OOXML, "word/vbaProject.bin": b"\x00" * 10}), "application", "octet-stream",
     "manual.docx"),
    (_OLE[:520] + "_VBA_PROJECT".encode("utf-16-le") + b"\x00" * 100, "application",
     "msword", "manual.doc"),
    (_zip({"photo.jpg": b"\xff\xd8\xff" + b"\x00" * 50}, encrypt_flag=True), "application",
     "zip", "photos.zip"),
    (b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', "image",
     "svg+xml", "logo.svg"),
    (b'<svg xmlns="http://www.w3.org/2000/svg"><a xlink:href="javascript:x()"/></svg>',
     "image", "svg+xml", "drawing.svg"),
    (b'<html><body><form action="https://x.example/login"><input name="pw"></form></body></html>',
     "text", "html", "login.html"),
    (_zip({"readme.txt": b"hi", "tool.exe": b"MZ" + b"\x00" * 60}), "application", "zip",
     "tools.zip"),
])
def test_dangerous_types_are_refused(engine, data, ctype, name, fname):
    v = engine.evaluate(make(BODY, attachments=[(data, ctype, name, fname)]),
                        ctx("buyer-to-seller"))
    assert v.action == "reject", v.findings
    assert v.reject_findings[0].kind == "dangerous_attachment"


@pytest.mark.parametrize("data, ctype, name, fname", [
    (_zip(_OOXML), "application", "vnd.openxmlformats-officedocument.wordprocessingml.document",
     "manual.docx"),
    (_zip({"mimetype": b"application/vnd.oasis.opendocument.text", "content.xml": b"<x/>"}),
     "application", "vnd.oasis.opendocument.text", "manual.odt"),
    (_zip({"a.jpg": b"\xff\xd8\xff" + b"\x00" * 50, "b.pdf": b"%PDF-1.4\n"}), "application",
     "zip", "photos.zip"),
    (b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n", "application", "pdf", "a.pdf"),
    (b"Order 204-3817265-4409183, 2 x lamp\n", "text", "plain", "notes.txt"),
    (b'<svg xmlns="http://www.w3.org/2000/svg"><rect width="4" height="4"/></svg>', "image",
     "svg+xml", "sketch.svg"),
])
def test_allowed_types_pass(engine, data, ctype, name, fname):
    v = engine.evaluate(make(BODY, attachments=[(data, ctype, name, fname)]),
                        ctx("buyer-to-seller"))
    assert v.action == "deliver", v.findings


def test_allow_list_is_read_from_the_policy_file(tmp_path):
    from relay.policy import PolicyEngine
    from relay.policy.config import shipped_dir

    src = (shipped_dir() / "default.toml").read_text()
    assert "allowed = [" in src
    src = src.replace('dir = "lexicons"', f'dir = "{shipped_dir() / "lexicons"}"')
    src = src.replace('allowed = ["pdf", ', 'allowed = [')       # PDF no longer allowed
    (tmp_path / "p.toml").write_text(src)
    eng = PolicyEngine.load(tmp_path / "p.toml")
    pdf = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
    v = eng.evaluate(make(BODY, attachments=[(pdf, "application", "pdf", "a.pdf")]), ctx())
    assert _kinds(v).get("attachment_removed") == "redact"


def test_content_type_names():
    assert attachments.content_type(b"MZ\x90\x00" + b"\x00" * 64) == "executable"
    assert attachments.content_type(b"%PDF-1.7\n") == "pdf"
    assert attachments.content_type(_zip(_OOXML)) == "docx"
