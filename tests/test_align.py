"""Alignment across pages: a piece whose engraving spans two pages, built by the project's own data engine."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from benchmarks.dataset_library import read_recording
from indexer.library import Library
from indexer.settings import Settings
from model.data import dataset as ds
from service.align import align

TWO_PAGE_PIECE = "haydn/opus1no1/movement4"  # a short quartet movement (test split) engraved on two pages
TURN_TOLERANCE_S = 3.0  # how far the aligned page turn may sit from the true one


@pytest.fixture(scope="module")
def two_page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Library, int, Path]]:
    from model.data.build import build

    root = tmp_path_factory.mktemp("two_page")
    manifest = build(root / "dataset", only=[TWO_PAGE_PIECE], workers=1, log=lambda *_: None)
    assert not manifest["failures"], manifest["failures"]
    assert manifest["pieces"][TWO_PAGE_PIECE]["pages"] >= 2
    library = Library(Settings(data_dir=root / "lib", threads=2))
    piece = library.add_pdf(ds.pdf_path(root / "dataset", TWO_PAGE_PIECE).read_bytes()).piece_id
    yield library, piece, root / "dataset"
    library.close()


def test_alignment_turns_the_page_when_the_music_does(two_page: tuple[Library, int, Path]) -> None:
    library, piece, dataset = two_page
    rec = ds.load_record(ds.record_path(dataset, TWO_PAGE_PIECE), with_audio=False)
    onset_page = np.array([rec.strip.systems[int(i)].page for i in rec.onset_system])
    onset_time = rec.onset_q * 60.0 / rec.renditions[0].bpm
    true_turn = float(onset_time[onset_page >= 1].min())  # first note on the second page

    result = align(library, piece, read_recording(dataset, TWO_PAGE_PIECE))
    pages = np.array([p.page for p in result.points])
    times = np.array([p.time for p in result.points])
    assert pages.max() >= 2 and pages[0] == 1
    aligned_turn = float(times[pages >= 2].min())
    assert abs(aligned_turn - true_turn) < TURN_TOLERANCE_S, (aligned_turn, true_turn)
