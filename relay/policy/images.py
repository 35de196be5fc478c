"""Image attachments: size, animation and metadata (EXIF, GPS, device), found and stripped.

Split from relay.policy.attachments, which decides what a file is; this module is the one
place that asks Pillow to open anything, so its cost limits live here.

An image costs width x height x 4 bytes once decoded, whatever its size on the wire: a
2 MB PNG can declare 13,000 x 13,000 pixels and take 600 MB to decode (Pillow only warns
below 89 million pixels). So the dimensions declared in the header (``Image.open`` reads
only the header) are checked against a pixel budget before anything is decoded, and the
paths that never need pixels (JPEG and PNG metadata, which are stripped segment by
segment) never decode at all. Only TIFF/WebP metadata needs a re-encode, which costs about
two copies of the pixels, so it has half the budget. An image over the budget is removed
(the ``attachment_removed`` finding, so the policy's action for it applies): the reader's
mail client would have to decode it too.

In a policy worker the memory budget is an address-space limit (relay.policy_pool): a
decode over it raises MemoryError, which every handler here lets through, so the message
is refused naming the budget rather than judged as an unreadable image.
"""

from __future__ import annotations

import io
import struct
import warnings
from collections.abc import Iterator

from PIL import Image

# Declared width x height of one image (relay.settings MessageSection.max_image_pixels,
# set by relay.policy_pool in each process that evaluates).
_PIXEL_BUDGET = 64_000_000


def set_pixel_budget(pixels: int) -> None:
    global _PIXEL_BUDGET
    _PIXEL_BUDGET = pixels


def pixel_budget() -> int:
    return _PIXEL_BUDGET


def declared_pixels(data: bytes) -> int | None:
    """Width x height as the file declares them, without decoding; None if unreadable.

    A file over Pillow's own bomb limit counts as infinitely large."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return int(width) * int(height)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                width, height = im.size
                return width * height
    except Image.DecompressionBombError:
        return 1 << 62
    except MemoryError:  # over the message's budget: relay.policy_pool refuses it
        raise
    except Exception:
        return None


def over_budget(data: bytes) -> str | None:
    """The detail of an ``attachment_removed`` finding when the image is too large."""
    pixels = declared_pixels(data)
    if pixels is not None and pixels > _PIXEL_BUDGET:
        return f"image larger than {_PIXEL_BUDGET // 1_000_000} megapixels"
    return None


def animated(data: bytes) -> bool:
    try:
        with Image.open(io.BytesIO(data)) as im:
            return bool(getattr(im, "is_animated", False))
    except MemoryError:  # over the message's budget: relay.policy_pool refuses it
        raise
    except Exception:
        return data.count(b"\x21\xf9\x04") > 1


def _png_chunks(data: bytes) -> Iterator[tuple[int, bytes, int]]:
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


_SENSITIVE_TAGS = (0x010F, 0x0110, 0xA434, 0xA433, 0x0131, 0xA431)  # make, model, lens, serial


def _sensitive(exif: Image.Exif) -> bool:
    if not exif:
        return False
    if exif.get_ifd(0x8825):  # GPS
        return True
    return any(tag in exif for tag in _SENSITIVE_TAGS)


def _png_exif(data: bytes) -> bool:
    """PNG metadata read from its chunks: Pillow's PNG getexif() decodes the whole image
    to reach an eXIf chunk after the pixel data."""
    for pos, ctype, length in _png_chunks(data):
        if ctype == b"eXIf":
            exif = Image.Exif()
            try:
                exif.load(data[pos + 8 : pos + 8 + length])
                return _sensitive(exif)
            except MemoryError:  # over the message's budget: relay.policy_pool refuses it
                raise
            except Exception:
                return True
        if ctype in (b"tEXt", b"zTXt", b"iTXt"):
            if data[pos + 8 : pos + 8 + 22].lower().startswith(b"raw profile type exif"):
                return True
    return False


def has_sensitive_exif(data: bytes) -> bool:
    """GPS or device data present? Read from the header and metadata only, never the
    pixels."""
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return _png_exif(data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                return _sensitive(im.getexif())
    except MemoryError:  # over the message's budget: relay.policy_pool refuses it
        raise
    except Exception:
        return b"Exif\x00\x00" in data[:65536]


_KINDS = ("jpeg", "png", "gif", "webp", "heic", "tiff", "bmp")


def judge(data: bytes, real: str, *, declared_image: bool) -> tuple[str, str, bytes | None] | None:
    """(finding kind, detail, cleaned bytes) for an image attachment, None when it is fine.

    ``real`` is the sniffed type, ``declared_image`` whether the part says image/*. The
    size check comes first: nothing below it decodes an image over the budget."""
    if real not in _KINDS:
        return None
    too_big = over_budget(data)
    if too_big is not None:
        return "attachment_removed", too_big, None
    if real == "gif" and animated(data):
        return "attachment_removed", "animated GIF", None
    if real == "png" and apng(data):
        return "attachment_removed", "animated PNG", None
    if (real in ("webp", "tiff") and declared_image) or real in ("jpeg", "png"):
        if not has_sensitive_exif(data):
            return None
        cleaned = _strip(data, real)
        if cleaned is None:  # GPS or device data we cannot remove within the budget
            return "attachment_removed", "image metadata that cannot be removed", None
        return "image_metadata", "EXIF data", cleaned
    return None


def strip_metadata(data: bytes, real: str) -> bytes | None:
    """Metadata-free copy, or None when there is no sensitive metadata (or it cannot be
    removed within the pixel budget)."""
    if not has_sensitive_exif(data):
        return None
    return _strip(data, real)


def _strip(data: bytes, real: str) -> bytes | None:
    """Lossless for JPEG and PNG (segments/chunks dropped); a re-encode otherwise."""
    if real == "jpeg":
        return _strip_jpeg(data)
    if real == "png":
        out = bytearray(data[:8])
        for pos, ctype, length in _png_chunks(data):
            if ctype not in _PNG_META:
                out += data[pos:pos + 12 + length]
        return bytes(out)
    # TIFF, WebP: only a re-encode drops the metadata; it holds two copies of the pixels.
    pixels = declared_pixels(data)
    if pixels is None or pixels > _PIXEL_BUDGET // 2:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                buf = io.BytesIO()
                im.save(buf, format=im.format)
                return buf.getvalue()
    except MemoryError:  # over the message's budget: relay.policy_pool refuses it
        raise
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
