"""Attachment checks: real type by magic bytes, dangerous files, animation, EXIF.

The declared type and the file name are what the sender claims; the bytes are what the
reader's machine will open. A file whose bytes are an executable, whose name ends in a
script extension (``.pdf.js``), or whose declared image/PDF type lies is dangerous.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass

from PIL import Image

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
    images = set(_IMAGE_EXT.values())
    for claim in (claimed, by_name):
        if not claim or real == claim or (claim in images and real in images):
            continue   # a PNG saved as .jpg is a harmless mislabel; anything else lies
        if real != "unknown" or claim in ("pdf", "jpeg", "png", "gif"):
            return AttachmentJudgement("dangerous_attachment", "declared type does not match")
    if real in ("vcard", "ics") or sub in ("vcard", "x-vcard", "directory") or last == "vcf":
        return AttachmentJudgement("attachment_removed", "contact card")
    if real == "gif" and _animated(data):
        return AttachmentJudgement("attachment_removed", "animated GIF")
    if real == "png" and _apng(data):
        return AttachmentJudgement("attachment_removed", "animated PNG")
    if (real in ("jpeg", "png", "webp", "tiff") and main == "image") or real in ("jpeg", "png"):
        cleaned = strip_metadata(data, real)
        if cleaned is not None:
            return AttachmentJudgement("image_metadata", "EXIF data", cleaned)
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


def _animated(data: bytes) -> bool:
    try:
        with Image.open(io.BytesIO(data)) as im:
            return bool(getattr(im, "is_animated", False))
    except Exception:
        return data.count(b"\x21\xf9\x04") > 1


def _png_chunks(data: bytes):
    pos = 8
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        ctype = data[pos + 4:pos + 8]
        yield pos, ctype, length
        pos += 12 + length
        if ctype == b"IEND":
            return


def _apng(data: bytes) -> bool:
    for _, ctype, _ in _png_chunks(data):
        if ctype == b"acTL":
            return True
        if ctype == b"IDAT":
            return False
    return False


_PNG_META = {b"eXIf", b"tEXt", b"iTXt", b"zTXt", b"tIME"}


def has_sensitive_exif(data: bytes) -> bool:
    """GPS or device data present (Pillow's reading of the EXIF block)?"""
    try:
        with Image.open(io.BytesIO(data)) as im:
            exif = im.getexif()
            if not exif:
                return False
            if exif.get_ifd(0x8825):
                return True
            return any(tag in exif for tag in (0x010F, 0x0110, 0xA434, 0xA433, 0x0131, 0xA431))
    except Exception:
        return b"Exif\x00\x00" in data[:65536]


def strip_metadata(data: bytes, real: str) -> bytes | None:
    """Metadata-free copy (lossless: segments/chunks dropped), or None when there is none."""
    if not has_sensitive_exif(data):
        return None
    if real == "jpeg":
        return _strip_jpeg(data)
    if real == "png":
        out = bytearray(data[:8])
        for pos, ctype, length in _png_chunks(data):
            if ctype not in _PNG_META:
                out += data[pos:pos + 12 + length]
        return bytes(out)
    try:
        with Image.open(io.BytesIO(data)) as im:
            buf = io.BytesIO()
            im.save(buf, format=im.format)
            return buf.getvalue()
    except Exception:
        return None


def _strip_jpeg(data: bytes) -> bytes:
    """Drop APP1..APP15 (bar ICC APP2 and Adobe APP14) and COM before the scan data."""
    out = bytearray(b"\xff\xd8")
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            break
        marker = data[pos + 1]
        if marker == 0xDA:       # start of scan: the rest is image data
            break
        (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
        seg = data[pos:pos + 2 + length]
        keep = not (0xE1 <= marker <= 0xEF and marker not in (0xE2, 0xEE)) and marker != 0xFE
        if keep:
            out += seg
        pos += 2 + length
    out += data[pos:]
    return bytes(out)
