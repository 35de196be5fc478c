"""Attachment checks: what the bytes are, judged against the policy's lists.

The declared type and the file name are what the sender claims; the bytes are what the
reader's machine will open. The real type comes from the content: puremagic's signature
database (pure Python) for the container, then a look inside the containers that hide
what matters: a ZIP is an Office document, an OpenDocument, a plain archive or an
encrypted one; an OOXML or OLE document may carry a VBA project; an SVG or HTML file may
carry a script or a form.

Each real type falls into one of three lists of ``policies/*.toml [attachments]``:
``dangerous`` (refused: ``dangerous_attachment``), ``allowed`` (kept), anything else
removed (``attachment_removed``). A name ending in an executable extension, a double
extension (``bill.pdf.js``), or a declared image/PDF type the bytes contradict are
dangerous whatever the lists say.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass

import puremagic

from relay.policy import images

# every name a policy's lists may use
TYPES = frozenset({
    "executable", "script", "installer", "office_macro", "onenote", "disk_image",
    "encrypted_archive", "svg_script", "html_form", "cab", "archive", "zip", "html", "svg",
    "pdf", "jpeg", "png", "gif", "webp", "heic", "tiff", "bmp", "text", "csv", "rtf",
    "docx", "xlsx", "pptx", "odt", "ods", "odp", "doc", "xls", "ppt", "vcard", "ics",
    "video", "audio", "unknown",
})
_EXEC_EXT = {
    "exe", "com", "scr", "pif", "bat", "cmd", "msi", "msp", "dll", "cpl", "js", "jse", "vbs",
    "vbe", "wsf", "wsh", "hta", "ps1", "psm1", "jar", "sh", "bash", "app", "apk", "lnk",
    "reg", "scf", "gadget", "msc", "iso", "img", "vhd", "vhdx", "docm", "xlsm", "pptm",
    "dotm", "xlam", "py", "pl", "rb", "php", "elf", "run", "command", "appimage", "deb",
    "rpm", "dmg", "pkg", "inf", "chm", "url", "website", "one", "onepkg", "cab", "appx",
    "msix", "xll", "iqy", "slk", "library-ms", "searchconnector-ms",
}
_DOC_EXT = {"pdf", "jpg", "jpeg", "png", "gif", "doc", "docx", "xls", "xlsx", "txt", "zip",
            "heic", "webp", "tif", "tiff", "bmp", "mp4", "mov", "csv", "odt", "rtf"}
_IMAGE_EXT = {"jpg": "jpeg", "jpeg": "jpeg", "jpe": "jpeg", "png": "png", "gif": "gif",
              "webp": "webp", "heic": "heic", "tif": "tiff", "tiff": "tiff", "bmp": "bmp"}
_IMAGES = frozenset(_IMAGE_EXT.values())

# puremagic's extension -> our type (first confident match wins)
_MAGIC = {
    ".exe": "executable", ".dll": "executable", ".elf": "executable", ".macho": "executable",
    ".msi": "installer", ".rar": "archive", ".7z": "archive", ".gz": "archive",
    ".tgz": "archive", ".bz2": "archive", ".xz": "archive", ".tar": "archive",
    ".zst": "archive", ".arj": "archive", ".lzh": "archive", ".ace": "archive",
    ".lz": "archive", ".z": "archive", ".cab": "cab", ".one": "onenote",
    ".iso": "disk_image", ".vhd": "disk_image", ".vhdx": "disk_image",
    ".vmdk": "disk_image", ".dmg": "disk_image", ".img": "disk_image", ".pdf": "pdf",
    ".jpg": "jpeg", ".jpeg": "jpeg", ".png": "png", ".gif": "gif", ".webp": "webp",
    ".heic": "heic", ".avif": "heic", ".tif": "tiff", ".tiff": "tiff", ".bmp": "bmp",
    ".rtf": "rtf", ".mp4": "video", ".m4v": "video", ".mov": "video", ".webm": "video",
    ".avi": "video", ".mkv": "video", ".mp3": "audio", ".m4a": "audio", ".wav": "audio",
    ".ogg": "audio", ".zip": "zip", ".doc": "ole", ".xls": "ole", ".ppt": "ole",
    ".svg": "svg", ".html": "html", ".htm": "html",
}
# the everyday types, checked before the signature database (most attachments are these)
_FAST = ((b"\xff\xd8\xff", "jpeg"), (b"\x89PNG\r\n\x1a\n", "png"), (b"GIF87a", "gif"),
         (b"GIF89a", "gif"), (b"II*\x00", "tiff"), (b"MM\x00*", "tiff"))
_MSI_CLSID = bytes.fromhex("84100c0000000000c000000000000046")
_OLE_MACRO = ("_VBA_PROJECT".encode("utf-16-le"), "Macros\x00".encode("utf-16-le"))
_MAX_MEMBERS = 5000


@dataclass(frozen=True)
class AttachmentJudgement:
    kind: str | None          # dangerous_attachment, attachment_removed, image_metadata, None
    detail: str = ""
    cleaned: bytes | None = None   # image bytes without metadata
    real: str = "unknown"          # the content type found (for reading its text)


def _exts(name: str) -> list[str]:
    parts = name.lower().strip().rstrip(". ").split(".")
    return parts[1:] if len(parts) > 1 else []


def content_type(data: bytes) -> str:
    """The real type of ``data`` (one of :data:`TYPES`), from its bytes alone."""
    head = data[:16]
    if head.startswith(b"#!"):
        return "script"
    if head.startswith(b"MZ") or head.startswith(b"\x7fELF"):
        return "executable"
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return _zip_type(data)
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return _ole_type(data)
    if b"%PDF-" in data[:1024]:
        return "pdf"
    for sig, kind in _FAST:
        if head.startswith(sig):
            return kind
    if head[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftyphevc", b"ftypavif"):
        return "heic"
    text = _as_text(data)
    if text is not None:
        return _text_type(text)
    try:
        found = puremagic.magic_string(data[:65536] if len(data) > 65536 else data)
    except Exception:
        found = []
    if not found and len(data) > 32774:          # ISO 9660 volume descriptor at 32 KB
        if data[32769:32774] == b"CD001":
            return "disk_image"
    if data[:2] == b"BM" and len(data) > 26 and data[6:10] == b"\x00" * 4:
        return "bmp"
    for m in found:
        t = _MAGIC.get(m.extension.lower())
        if t is not None and m.confidence >= 0.4:
            return "doc" if t == "ole" else t
    return "unknown"


def _as_text(data: bytes) -> str | None:
    sample = data[:8192]
    if b"\x00" in sample:
        return None
    try:
        return sample.decode("utf-8")
    except UnicodeDecodeError as err:
        if err.start >= len(sample) - 4:       # a character cut by the sample's end
            return sample[:err.start].decode("utf-8")
        try:
            return sample.decode("cp1252")
        except UnicodeDecodeError:
            return None


def _text_type(text: str) -> str:
    low = text.lstrip("\ufeff \t\r\n").lower()
    if low.startswith("begin:vcard"):
        return "vcard"
    if low.startswith("begin:vcalendar"):
        return "ics"
    if low.startswith("{\\rtf"):
        return "rtf"
    head = low[:4096]
    if "<svg" in head and (low.startswith(("<svg", "<?xml", "<!doctype svg"))):
        active = ("<script", "javascript:", "<foreignobject", " on", "\ton", "\non")
        return "svg_script" if any(_active(low, a) for a in active) else "svg"
    if low.startswith(("<!doctype html", "<html", "<head", "<body", "<meta", "<div",
                       "<table", "<form", "<script", "<iframe")):
        if "<form" in low or "<script" in low or "<iframe" in low:
            return "html_form"
        return "html"
    return "text"


def _active(low: str, needle: str) -> bool:
    if not needle.strip().startswith("on"):
        return needle in low
    # event-handler attributes: onload=, onclick= ...
    import re

    return re.search(r"\son[a-z]{3,20}\s*=", low) is not None


def _zip_type(data: bytes) -> str:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()[:_MAX_MEMBERS]
            names = [i.filename for i in infos]
            if any(i.flag_bits & 0x1 for i in infos):
                return "encrypted_archive"
            lower = {n.lower() for n in names}
            if "[content_types].xml" in lower:
                if any(n.endswith("vbaproject.bin") for n in lower):
                    return "office_macro"
                try:
                    ct = zf.read("[Content_Types].xml")[:200_000].lower()
                except Exception:
                    ct = b""
                if b"macroenabled" in ct:
                    return "office_macro"
                for prefix, kind in (("word/", "docx"), ("xl/", "xlsx"), ("ppt/", "pptx")):
                    if any(n.startswith(prefix) for n in lower):
                        return kind
                return "zip"
            if "mimetype" in lower:
                mt = zf.read("mimetype")[:100].decode("ascii", "replace")
                for suffix, kind in ((".text", "odt"), (".spreadsheet", "ods"),
                                     (".presentation", "odp")):
                    if mt.startswith("application/vnd.oasis.opendocument") and mt.endswith(
                            suffix):
                        return kind
    except Exception:
        return "archive"    # a ZIP we cannot read is not a file we can vouch for
    for n in names:
        exts = _exts(n.rsplit("/", 1)[-1])
        if exts and exts[-1] in _EXEC_EXT:
            return "executable"
    return "zip"


def _ole_type(data: bytes) -> str:
    window = data[:1_000_000]
    if _MSI_CLSID in window:
        return "installer"
    if any(m in window for m in _OLE_MACRO):
        return "office_macro"
    return "doc"


def judge(name: str, ctype: str, data: bytes, *, allowed: frozenset[str] = frozenset(),
          dangerous: frozenset[str] = frozenset()) -> AttachmentJudgement:
    """Judge one attachment against the policy's ``allowed`` and ``dangerous`` lists."""
    exts = _exts(name)
    real = content_type(data)
    last = exts[-1] if exts else ""
    if real in dangerous:
        return AttachmentJudgement("dangerous_attachment", f"{real} content", real=real)
    if last in _EXEC_EXT:
        detail = "double extension" if len(exts) >= 2 and exts[-2] in _DOC_EXT else f".{last} file"
        return AttachmentJudgement("dangerous_attachment", detail, real=real)
    main, _, sub = ctype.lower().partition("/")
    claimed = _IMAGE_EXT.get(sub) if main == "image" else ("pdf" if sub == "pdf" else None)
    by_name = _IMAGE_EXT.get(last) or ("pdf" if last == "pdf" else None)
    for claim in (claimed, by_name):
        if not claim or real == claim or (claim in _IMAGES and real in _IMAGES):
            continue   # a PNG saved as .jpg is a harmless mislabel; anything else lies
        if real not in ("unknown", "text") or claim in ("pdf", "jpeg", "png", "gif"):
            return AttachmentJudgement("dangerous_attachment", "declared type does not match",
                                       real=real)
    if real == "text" and (sub in ("vcard", "x-vcard", "directory") or last == "vcf"):
        real = "vcard"
    if real == "text" and (sub == "csv" or last == "csv"):
        real = "csv"
    if real not in allowed:
        what = "contact card" if real == "vcard" else f"{real} is not an allowed type"
        return AttachmentJudgement("attachment_removed", what, real=real)
    found = images.judge(data, real, declared_image=main == "image")
    if found is not None:
        return AttachmentJudgement(*found, real=real)
    return AttachmentJudgement(None, real=real)
