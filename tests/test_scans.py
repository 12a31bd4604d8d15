"""The page front-end on scanned and non-music pages, with pages engraved by the project's own pipeline."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from benchmarks.degrade import ScanStyle, degrade_page, map_box
from benchmarks.systems import box_iou
from indexer.library import Library
from indexer.pdf import rasterise
from indexer.settings import Settings
from indexer.store import SystemRow
from model.page import prepare
from model.sheet import System, find_systems, read_page
from tests.conftest import TEST_PIECE, VAL_PIECE

DPI = 150  # the indexer's resolution


def _box(s: System) -> tuple[float, float, float, float]:
    return (s.left, s.top, s.right, s.bottom)


@pytest.fixture(scope="module")
def page(pdfs: dict[str, bytes]) -> np.ndarray:
    """Page 1 of the validation fixture piece (a song reduced to two staves per system)."""
    return rasterise(pdfs[VAL_PIECE], DPI, 10**9)[0]


def _text_page(shape: tuple[int, int]) -> np.ndarray:
    """A title page: a large title, a composer line and paragraphs of justified-looking prose."""
    h, w = shape
    image = Image.new("L", (w, h), 255)
    draw = ImageDraw.Draw(image)
    draw.text((w // 5, h // 6), "SIX SONGS FOR VOICE AND PIANO", fill=0, font=ImageFont.load_default(size=48))
    draw.text((w // 3, h // 6 + 90), "Robert Schumann, op. 48", fill=0, font=ImageFont.load_default(size=30))
    body = ImageFont.load_default(size=20)
    words = "the edition follows the composer's autograph and the first printing with editorial marks".split()
    rng = np.random.default_rng(0)
    for line in range(40):
        text = " ".join(rng.choice(words, size=11))
        draw.text((w // 10, h // 3 + 26 * line), text, fill=0, font=body)
    draw.line((w // 10, h // 3 - 20, w - w // 10, h // 3 - 20), fill=0, width=2)  # a rule under the title
    return np.asarray(image, dtype=np.uint8)


def test_rotated_page_gives_the_same_systems(page: np.ndarray) -> None:
    _, straight = read_page(page)
    assert len(straight) >= 2
    h, w = page.shape
    for angle in (1.0, -1.0):
        rotated = cv2.warpAffine(page, cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0), (w, h), borderValue=255)
        image, found = read_page(rotated)
        assert image.shape == page.shape
        assert len(found) == len(straight), angle
        # straightened about the same centre, the page comes back into the straight page's frame
        for f, s in zip(found, straight, strict=True):
            assert np.allclose(_box(f), _box(s), atol=3.0), (angle, _box(f), _box(s))


def test_degraded_150_dpi_scan_gives_the_same_systems(page: np.ndarray) -> None:
    _, straight = read_page(page)
    style = ScanStyle(rotation=1.0, blur=(0.8, 0.8), noise=(6.0, 6.0), jpeg=(40, 40), paper=(0.85, 0.85))
    scan, homography = degrade_page(page, np.random.default_rng(3), style)
    assert np.abs(scan.astype(int) - page).mean() > 20  # really degraded: grey, noisy, moved
    prepared = prepare(scan)
    assert prepared.angle != 0.0
    found = find_systems(prepared)
    assert len(found) == len(straight)
    for s in straight:  # the clean page's systems, carried into the straightened scan's frame
        truth = map_box(_box(s), homography, prepared.to_image)
        assert max(box_iou(truth, _box(f)) for f in found) >= 0.9


def test_text_and_blank_pages_have_no_systems(page: np.ndarray) -> None:
    text = _text_page(page.shape)
    assert (text < 128).mean() > 0.01  # plenty of ink, just no music
    assert read_page(text)[1] == []
    assert read_page(np.full(page.shape, 255, np.uint8))[1] == []


def test_scanned_text_page_has_no_systems(page: np.ndarray) -> None:
    # the scan's threshold thickens lines of prose into bars spaced like staff lines (5 false systems
    # at seed 1 before staff lines had to be unbroken strokes)
    for seed in range(4):
        scan, _ = degrade_page(_text_page(page.shape), np.random.default_rng(seed))
        assert read_page(scan)[1] == [], seed


def test_ingest_skips_a_title_page(settings: Settings, pdfs: dict[str, bytes]) -> None:
    music = rasterise(pdfs[TEST_PIECE], DPI, 10**9)
    pages = [Image.fromarray(p) for p in [_text_page(music[0].shape), *music]]
    buffer = io.BytesIO()
    pages[0].save(buffer, format="PDF", save_all=True, append_images=pages[1:], resolution=DPI)
    lib = Library(settings)
    try:
        with_title = lib.add_pdf(buffer.getvalue(), title="with a title page")
        plain = lib.add_pdf(pdfs[TEST_PIECE], title="plain")
        assert with_title.pages_without_music == [1]
        assert plain.pages_without_music == []
        counts = lib.counts()
        # PIL re-encodes the music pages (no longer exactly white paper), so the count may differ slightly
        assert counts[plain.piece_id] > 0
        assert abs(counts[with_title.piece_id] - counts[plain.piece_id]) <= 0.05 * counts[plain.piece_id]
        with lib.Session() as s:
            pages_used = set(s.scalars(SystemRow.__table__.select().with_only_columns(SystemRow.page)
                                       .where(SystemRow.piece_id == with_title.piece_id)))  # fmt: skip
        assert pages_used == set(range(2, len(music) + 2))
    finally:
        lib.close()


def test_a_scanned_pdf_indexes_like_its_clean_pdf(settings: Settings, dataset: Path) -> None:
    """The identification benchmark's scanned library (`eval identify --pdfs scan`): a seeded scan of the
    test piece, put back into a PDF, indexes to the same systems and within 5 % of the clean snippets."""
    from benchmarks.pdf_sources import source_pdf
    from model.data.dataset import pdf_path

    scan = source_pdf(dataset, TEST_PIECE, "scan")
    assert scan != pdf_path(dataset, TEST_PIECE) and source_pdf(dataset, TEST_PIECE, "scan") == scan  # kept
    lib = Library(settings)
    try:
        clean_id = lib.add_pdf(pdf_path(dataset, TEST_PIECE).read_bytes(), title="clean").piece_id
        scan_id = lib.add_pdf(scan.read_bytes(), title="scan").piece_id
        with lib.Session() as s:
            systems = {pid: s.query(SystemRow).filter(SystemRow.piece_id == pid).count() for pid in (clean_id, scan_id)}
        assert systems[scan_id] == systems[clean_id] > 0
        counts = lib.counts()
        assert abs(counts[scan_id] - counts[clean_id]) <= 0.05 * counts[clean_id]
    finally:
        lib.close()


def test_ledger_lines_between_the_staves_do_not_split_a_system() -> None:
    """A run of notes with ledger lines above the bass staff (as in Schumann's op. 41/1, fourth movement)
    draws five long, evenly spaced rows one staff space above the real staff; the grand staff is still
    one system from the treble staff's top line to the bass staff's bottom line."""
    page = np.full((400, 1240), 255, np.uint8)
    space = 10
    for top in (100, 230):  # treble and bass staves, joined by the system barlines
        for k in range(5):
            page[top + k * space, 30:1200] = 0
    page[100:271, 30] = page[100:271, 1199] = 0
    for x in range(100, 520, 14):  # sixteenths with five ledger lines each, 1 px apart
        for k in range(1, 6):
            page[230 - k * space, x : x + 13] = 0
    systems = find_systems(prepare(page))
    assert [(round(s.top), round(s.bottom)) for s in systems] == [(100, 270)]


def test_a_scan_is_stored_on_white_paper_and_a_born_digital_page_as_it_is(page: np.ndarray) -> None:
    """The network learned from born-digital pages (paper exactly 255): the indexer keeps a scan's ink
    and sets its noisy, toned paper to white, and leaves a born-digital page untouched."""
    style = ScanStyle(rotation=1.0, blur=(0.8, 0.8), noise=(6.0, 6.0), jpeg=(40, 40), paper=(0.85, 0.85))
    scan, _ = degrade_page(page, np.random.default_rng(3), style)
    assert (prepare(scan).image == 255).mean() < 0.5  # flat-fielded, the paper is still noise around white
    stored, systems = read_page(scan)
    assert systems and (stored == 255).mean() > 0.85
    ink = (page < 128).mean()
    assert abs((stored < 128).mean() - ink) < 0.5 * ink  # the notes are all still there
    assert np.array_equal(read_page(page)[0], prepare(page).image)
