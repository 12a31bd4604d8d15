"""Hostile inputs, generated on the fly: corrupt, encrypted, empty, staff-less and oversized PDFs."""

from __future__ import annotations

import io

from PIL import Image, ImageDraw


def blank_pdf(pages: int = 1, size: tuple[int, int] = (600, 800), text: str | None = None) -> bytes:
    images = []
    for _ in range(pages):
        img = Image.new("L", size, 255)
        if text:
            ImageDraw.Draw(img).text((40, 40), text, fill=0)
        images.append(img)
    buf = io.BytesIO()
    images[0].save(buf, "PDF", save_all=True, append_images=images[1:])
    return buf.getvalue()


def encrypted_pdf(data: bytes) -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for page in PdfReader(io.BytesIO(data)).pages:
        writer.add_page(page)
    writer.encrypt("secret")
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def giant_page_pdf(points: float = 100_000 * 72 / 150) -> bytes:
    """One blank page that would rasterise to 100,000 × 100,000 px at 150 dpi."""
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=points, height=points)
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def many_pages_pdf(pages: int) -> bytes:
    from pypdf import PdfWriter

    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=595, height=842)
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def bad_pdfs(good: bytes) -> dict[str, bytes]:
    """name → bytes of every PDF the library must refuse without storing anything."""
    return {
        "empty": b"",
        "truncated": good[: len(good) // 3],
        "corrupt": b"%PDF-1.7\n" + bytes(range(256)) * 20,
        "encrypted": encrypted_pdf(good),
        "not a pdf": b"PK\x03\x04 this is a zip file, not a score",
        "no staves": blank_pdf(text="Just some words, no music at all."),
        "1000 pages": many_pages_pdf(1000),
        "giant page": giant_page_pdf(),
    }
