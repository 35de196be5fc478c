"""Image attachments: animation and metadata (EXIF, GPS, device) found and stripped.

Split from relay.policy.attachments, which decides what a file is; this module handles
what Pillow is asked to open, so its cost limits live in one place.
"""

from __future__ import annotations

import io
import struct

from PIL import Image


def animated(data: bytes) -> bool:
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


def apng(data: bytes) -> bool:
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
