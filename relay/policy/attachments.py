"""Attachment checks: real type by magic bytes, dangerous files, animation, EXIF.

The declared type and the file name are what the sender claims; the bytes are what the
reader's machine will open. A file whose bytes are an executable, whose name ends in a
script extension (``.pdf.js``), or whose declared image/PDF type lies is dangerous.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from relay.policy import images

_EXEC_EXT = {
    "exe", "com", "scr", "pif", "bat", "cmd", "msi", "msp", "dll", "cpl", "js", "jse", "vbs",
    "vbe", "wsf", "wsh", "hta", "ps1", "psm1", "jar", "sh", "bash", "app", "apk", "lnk",
    "reg", "scf", "gadget", "msc", "iso", "img", "vhd", "docm", "xlsm", "pptm", "dotm",
    "xlam", "py", "pl", "rb", "php", "elf", "run", "command", "appimage", "deb", "rpm",
    "dmg", "pkg", "inf", "chm", "url", "website",
}
_DOC_EXT = {"pdf", "jpg", "jpeg", "png", "gif", "doc", "docx", "xls", "xlsx", "txt", "zip",
            "heic", "webp", "tif", "tiff", "bmp", "mp4", "mov", "csv", "odt", "rtf"}
_ALLOWED = {"pdf", "jpeg", "png", "gif", "webp", "heic", "tiff", "bmp", "text", "zip-office"}
_IMAGE_EXT = {"jpg": "jpeg", "jpeg": "jpeg", "jpe": "jpeg", "png": "png", "gif": "gif",
              "webp": "webp", "heic": "heic", "tif": "tiff", "tiff": "tiff", "bmp": "bmp"}


def sniff(data: bytes) -> str:
    """Coarse real type of ``data`` from its first bytes."""
    h = data[:16]
    if h.startswith(b"MZ"):
        return "exe"
    if h.startswith(b"\x7fELF") or h[:4] in (b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf",
                                            b"\xcf\xfa\xed\xfe", b"\xce\xfa\xed\xfe",
                                            b"\xca\xfe\xba\xbe"):
        return "exe"
    if h.startswith(b"#!"):
        return "script"
    if b"%PDF-" in data[:1024]:
        return "pdf"
    if h.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if h.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if h[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if h[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftyphevc"):
        return "heic"
    if h[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if h.startswith(b"BM"):
        return "bmp"
    if h.startswith(b"PK\x03\x04"):
        return "zip"
    if h.startswith(b"\xd0\xcf\x11\xe0"):
        return "ole"
    head = data[:2048].lstrip().lower()
    if head.startswith(b"begin:vcard"):
        return "vcard"
    if head.startswith(b"begin:vcalendar"):
        return "ics"
    return "unknown"


@dataclass(frozen=True)
class AttachmentJudgement:
    kind: str | None          # dangerous_attachment, attachment_removed, image_metadata, None
    detail: str = ""
    cleaned: bytes | None = None   # image bytes without metadata


def _exts(name: str) -> list[str]:
    parts = name.lower().strip().rstrip(". ").split(".")
    return parts[1:] if len(parts) > 1 else []


def judge(name: str, ctype: str, data: bytes) -> AttachmentJudgement:
    exts = _exts(name)
    real = sniff(data)
    last = exts[-1] if exts else ""
    if real in ("exe", "script"):
        return AttachmentJudgement("dangerous_attachment", f"{real} content")
    if real == "zip" and _zip_has_executable(data):
        return AttachmentJudgement("dangerous_attachment", "archive with an executable")
    if last in _EXEC_EXT:
        detail = "double extension" if len(exts) >= 2 and exts[-2] in _DOC_EXT else f".{last} file"
        return AttachmentJudgement("dangerous_attachment", detail)
    main, _, sub = ctype.lower().partition("/")
    claimed = _IMAGE_EXT.get(sub) if main == "image" else ("pdf" if sub == "pdf" else None)
    by_name = _IMAGE_EXT.get(last) or ("pdf" if last == "pdf" else None)
    image_kinds = set(_IMAGE_EXT.values())
    for claim in (claimed, by_name):
        if not claim or real == claim or (claim in image_kinds and real in image_kinds):
            continue   # a PNG saved as .jpg is a harmless mislabel; anything else lies
        if real != "unknown" or claim in ("pdf", "jpeg", "png", "gif"):
            return AttachmentJudgement("dangerous_attachment", "declared type does not match")
    if real in ("vcard", "ics") or sub in ("vcard", "x-vcard", "directory") or last == "vcf":
        return AttachmentJudgement("attachment_removed", "contact card")
    found = images.judge(data, real, declared_image=main == "image")
    if found is not None:
        return AttachmentJudgement(*found)
    return AttachmentJudgement(None)


def _zip_has_executable(data: bytes) -> bool:
    """Archives are opened by the reader in one click: look at the member names."""
    import zipfile

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = zf.namelist()[:2000]
    except Exception:
        return False
    for n in names:
        exts = _exts(n.rsplit("/", 1)[-1])
        if exts and (exts[-1] in _EXEC_EXT - {"docm", "xlsm", "pptm", "dotm", "xlam"}
                     or n.lower().startswith(("word/vbaproject", "xl/vbaproject"))):
            return True
    return False
