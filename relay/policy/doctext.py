"""Text out of attachments, so the body's rules can read them too.

PDF (pypdf), Office Open XML and OpenDocument (zipfile + the XML's text nodes), vCard,
iCalendar, plain text and RTF (decoded text), and images by OCR (the ``tesseract``
program from the Debian packages, run as a subprocess with a timeout; no Python binding
needed). Every read happens inside a :class:`Budget` per message: bytes, characters,
pages, and wall time, with OCR timed apart from document text because it costs ten times
more. What cannot be read inside the budget is reported as ``Reading.undecided`` so the
engine can hold the message instead of pretending the attachment was empty.

Deliberately not done: OCR of images embedded in PDFs (a scanned PDF is read for its text
layer only) and macros or scripts (a document carrying them is refused before reading).
"""

from __future__ import annotations

import io
import shutil
import subprocess
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from xml.etree import ElementTree

import regex

READABLE = frozenset({"pdf", "docx", "xlsx", "pptx", "odt", "ods", "odp", "ics", "rtf",
                      "jpeg", "png", "gif", "webp", "tiff", "bmp"})
_OOXML_PARTS = regex.compile(
    r"^(?:word/(?:document|header\d*|footer\d*|footnotes|endnotes|comments)\.xml"
    r"|xl/sharedStrings\.xml|xl/worksheets/sheet\d+\.xml|ppt/slides/slide\d+\.xml"
    r"|ppt/notesSlides/notesSlide\d+\.xml|docProps/core\.xml)$")
_ODF_PARTS = ("content.xml", "styles.xml", "meta.xml")
_PARAGRAPH_TAGS = ("}p", "}tr", "}br", "}tab", "}row", "}h", "}si")
_LANGS = {"en": "eng", "de": "deu", "fr": "fra", "es": "spa", "it": "ita", "pl": "pol",
          "nl": "nld", "ja": "jpn"}
_RTF_CONTROL = regex.compile(r"\\[a-z]+-?\d* ?|[{}]|\\'[0-9a-f]{2}")


@dataclass
class Budget:
    """What one message may spend on reading its attachments (policy ``[reading]``)."""

    max_bytes: int = 16_000_000
    max_chars: int = 200_000
    max_pages: int = 200
    doc_seconds: float = 3.0
    ocr_seconds: float = 8.0
    spent_doc: float = 0.0
    spent_ocr: float = 0.0
    read_bytes: int = 0
    chars: int = 0


@dataclass
class Reading:
    text: str = ""
    undecided: str | None = None      # why the text could not be read in full
    ocr: bool = False
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def tesseract() -> str | None:
    return shutil.which("tesseract")


def installed_ocr_languages() -> frozenset[str]:
    exe = tesseract()
    if exe is None:
        return frozenset()
    try:
        out = subprocess.run([exe, "--list-langs"], capture_output=True, timeout=10).stdout
    except Exception:
        return frozenset()
    return frozenset(ln.strip() for ln in out.decode("utf-8", "replace").splitlines()[1:])


_INSTALLED: frozenset[str] | None = None


def ocr_languages(locale: str) -> str:
    """English (addresses and numbers) plus the buyer's language when installed."""
    global _INSTALLED
    if _INSTALLED is None:
        _INSTALLED = installed_ocr_languages()
    want = ["eng", _LANGS.get(locale.replace("_", "-").split("-")[0].lower(), "eng")]
    return "+".join(dict.fromkeys(x for x in want if x in _INSTALLED)) or "eng"


def read(real: str, data: bytes, budget: Budget, *, locale: str = "en-GB",
         ocr: bool = True, min_confidence: float = 55.0) -> Reading:
    """Text of one attachment whose real type is ``real``; never raises."""
    if budget.read_bytes + len(data) > budget.max_bytes:
        return Reading(undecided="attachment over the reading budget")
    budget.read_bytes += len(data)
    start = time.monotonic()
    try:
        if real in ("jpeg", "png", "gif", "webp", "tiff", "bmp"):
            if not ocr:
                return Reading()
            res = _ocr(data, budget, locale, min_confidence)
            budget.spent_ocr += time.monotonic() - start
            res.seconds = time.monotonic() - start
            return _cap(res, budget)
        if budget.spent_doc >= budget.doc_seconds:
            return Reading(undecided="attachment over the reading time budget")
        if real == "pdf":
            res = _pdf(data, budget)
        elif real in ("docx", "xlsx", "pptx"):
            res = Reading(_zip_xml(data, lambda n: bool(_OOXML_PARTS.match(n))))
        elif real in ("odt", "ods", "odp"):
            res = Reading(_zip_xml(data, lambda n: n in _ODF_PARTS))
        elif real in ("text", "csv", "vcard", "ics"):
            res = Reading(_decode(data))
        elif real == "rtf":
            res = Reading(_RTF_CONTROL.sub(" ", _decode(data)))
        else:
            return Reading()
    except Exception as err:
        # a document with pages we cannot parse cannot be vouched for; bytes without any
        # page are no document at all (no viewer shows anything), so there is no text
        pages = b"/Page" in data if real == "pdf" else True
        res = Reading(undecided=f"attachment could not be read ({type(err).__name__})"
                      if pages else None)
    budget.spent_doc += time.monotonic() - start
    res.seconds = time.monotonic() - start
    if budget.spent_doc > budget.doc_seconds and res.undecided is None:
        res.undecided = "attachment over the reading time budget"
    return _cap(res, budget)


def _cap(res: Reading, budget: Budget) -> Reading:
    room = budget.max_chars - budget.chars
    if len(res.text) > room:
        res.text = res.text[:max(0, room)]
        res.undecided = res.undecided or "attachment text over the reading budget"
    budget.chars += len(res.text)
    return res


def _decode(data: bytes) -> str:
    for enc in ("utf-8", "cp1252"):
        try:
            return data.decode(enc)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def _pdf(data: bytes, budget: Budget) -> Reading:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(data))
    if reader.is_encrypted:
        try:
            reader.decrypt("")
        except Exception:
            return Reading(undecided="encrypted PDF")
    out: list[str] = []
    pages = reader.pages
    deadline = time.monotonic() + max(0.0, budget.doc_seconds - budget.spent_doc)
    for i, page in enumerate(pages):
        if i >= budget.max_pages:
            return Reading("\n".join(out), undecided="PDF has more pages than the budget")
        if time.monotonic() > deadline:
            return Reading("\n".join(out), undecided="PDF over the reading time budget")
        out.append(page.extract_text() or "")
        if sum(map(len, out)) > budget.max_chars:
            break
    # annotations carry links and text outside the page content
    for page in pages[:budget.max_pages]:
        for annot in page.get("/Annots") or []:
            try:
                obj = annot.get_object()
                uri = (obj.get("/A") or {}).get("/URI")
                if uri:
                    out.append(str(uri))
                if obj.get("/Contents"):
                    out.append(str(obj["/Contents"]))
            except Exception:
                continue
    return Reading("\n".join(out))


def _zip_xml(data: bytes, wanted: Callable[[str], bool]) -> str:
    out: list[str] = []
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for info in zf.infolist()[:2000]:
            if not wanted(info.filename) or info.file_size > 20_000_000:
                continue
            out.append(_xml_text(zf.read(info)))
            # hyperlink targets live in the part's relationships
            rels = info.filename.rsplit("/", 1)
            if len(rels) == 2:
                rel = f"{rels[0]}/_rels/{rels[1]}.rels"
                if rel in zf.namelist():
                    out.extend(regex.findall(rb'Target="([^"]+)"\s+TargetMode="External"',
                                             zf.read(rel)) and [
                        t.decode("utf-8", "replace") for t in regex.findall(
                            rb'Target="([^"]+)"\s+TargetMode="External"', zf.read(rel))])
    return "\n".join(out)


def _xml_text(xml: bytes) -> str:
    """Text nodes in document order; paragraphs and rows become lines."""
    out: list[str] = []
    try:
        for event, el in ElementTree.iterparse(io.BytesIO(xml), events=("start", "end")):
            if event == "start" and el.tag.endswith(_PARAGRAPH_TAGS):
                out.append("\n")
            elif event == "end":
                if el.text and not el.tag.endswith(("}instrText",)):
                    out.append(el.text)
                if el.get("{http://www.w3.org/1999/xlink}href"):
                    out.append(" " + el.get("{http://www.w3.org/1999/xlink}href", ""))
                el.clear()
    except ElementTree.ParseError:
        return regex.sub(r"<[^>]+>", " ", xml.decode("utf-8", "replace"))
    return "".join(out)


def _ocr(data: bytes, budget: Budget, locale: str, min_confidence: float) -> Reading:
    exe = tesseract()
    if exe is None:
        return Reading(undecided="no OCR engine installed to read an image", ocr=True)
    left = budget.ocr_seconds - budget.spent_ocr
    if left <= 0.2:
        return Reading(undecided="image over the OCR time budget", ocr=True)
    try:
        run = subprocess.run([exe, "-", "-", "-l", ocr_languages(locale), "tsv"], input=data,
                             capture_output=True, timeout=left)
    except subprocess.TimeoutExpired:
        return Reading(undecided="image over the OCR time budget", ocr=True)
    if run.returncode != 0:     # not a decodable image: no viewer shows text in it either
        return Reading(ocr=True)
    words: list[tuple[float, str]] = []
    lines: dict[tuple[str, str, str], list[str]] = {}
    for row in run.stdout.decode("utf-8", "replace").splitlines()[1:]:
        cols = row.split("\t")
        if len(cols) < 12 or not cols[11].strip():
            continue
        try:
            conf = float(cols[10])
        except ValueError:
            continue
        words.append((conf, cols[11]))
        lines.setdefault((cols[2], cols[3], cols[4]), []).append(cols[11])
    text = "\n".join(" ".join(ws) for ws in lines.values())
    res = Reading(text, ocr=True)
    # text is there (several word boxes) but too uncertain to judge: not the same as none
    shaped = [c for c, w in words if len(w) >= 3]
    if len(shaped) >= 4 and sum(shaped) / len(shaped) < min_confidence:
        res.undecided = "image text could not be read with confidence"
    return res
