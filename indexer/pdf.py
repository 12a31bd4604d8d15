"""PDF → greyscale page images, with every hostile-input check done before rasterising anything."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from indexer.errors import BadInput, UnsupportedType

POINTS_PER_INCH = 72.0  # PDF user-space units


def inspect_pdf(data: bytes, max_pages: int, max_inches: float, dpi: int, max_pixels: int) -> int:
    """Validate a PDF without rendering it; returns its page count."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    if not data:
        raise BadInput("empty file")
    if not data.lstrip()[:5] == b"%PDF-":
        raise UnsupportedType("not a PDF (missing %PDF header)")
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            raise BadInput("encrypted PDFs are not supported")
        n = len(reader.pages)
        if n == 0:
            raise BadInput("the PDF has no pages")
        if n > max_pages:
            raise BadInput(f"the PDF has {n} pages; the limit is {max_pages}")
        for i, page in enumerate(reader.pages):
            w, h = float(page.mediabox.width), float(page.mediabox.height)
            if max(w, h) / POINTS_PER_INCH > max_inches:
                raise BadInput(f"page {i + 1} is {w / 72:.0f}×{h / 72:.0f} in; the limit is {max_inches:g} in")
            if (w / POINTS_PER_INCH * dpi) * (h / POINTS_PER_INCH * dpi) > max_pixels:
                raise BadInput(f"page {i + 1} would rasterise to more than {max_pixels} pixels")
    except BadInput:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError) as exc:
        raise BadInput(f"corrupt PDF: {exc}") from None
    return n


def rasterise(data: bytes, dpi: int, max_pixels: int, timeout_s: int = 120) -> list[np.ndarray]:
    """Pages as greyscale uint8 arrays (paper white) via poppler."""
    from pdf2image import convert_from_bytes
    from pdf2image.exceptions import PDFInfoNotInstalledError, PDFPageCountError, PDFSyntaxError
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = max_pixels  # decompression-bomb guard for anything PIL opens
    try:
        pages = convert_from_bytes(data, dpi=dpi, grayscale=True, timeout=timeout_s)
    except (PDFPageCountError, PDFSyntaxError) as exc:
        raise BadInput(f"corrupt PDF: {exc}") from None
    except PDFInfoNotInstalledError as exc:  # an installation problem, not the user's fault
        raise RuntimeError("poppler-utils is not installed") from exc
    if not pages:
        raise BadInput("the PDF rendered no pages")
    return [np.asarray(p.convert("L"), dtype=np.uint8) for p in pages]


def title_from_filename(filename: str | None) -> str | None:
    """A title from an upload's file name: "Clair_de_lune.pdf" -> "Clair de lune"."""
    if not filename:
        return None
    stem = Path(filename.replace("\\", "/")).name.rsplit(".", 1)[0]
    return stem.replace("_", " ").strip() or None


def pdf_metadata(data: bytes) -> tuple[str | None, str | None]:
    """(title, author) from the PDF's document information, None where absent or unreadable."""
    from pypdf import PdfReader

    try:
        meta = PdfReader(io.BytesIO(data), strict=False).metadata
    except Exception:  # noqa: BLE001 - metadata is optional
        return None, None
    if meta is None:
        return None, None
    title = (str(meta.title).strip() or None) if meta.title else None
    author = (str(meta.author).strip() or None) if meta.author else None
    return title, author
