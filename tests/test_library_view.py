"""Leaving pieces out (Library.without): what the evaluations rely on to ask "is this piece absent?"."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from indexer.library import Library
from indexer.settings import Settings
from model.audio import SAMPLE_RATE
from model.data import dataset as ds
from service.identify import identify
from tests.conftest import TEST_PIECE, TRAIN_PIECE, VAL_PIECE

TOP_K = 25  # neighbours per excerpt, as in production


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, pdfs: dict[str, bytes]) -> Iterator[Library]:
    lib = Library(Settings(data_dir=tmp_path_factory.mktemp("view") / "lib", threads=2))
    for pid in (TRAIN_PIECE, VAL_PIECE, TEST_PIECE):
        lib.add_pdf(pdfs[pid], title=pid)
    yield lib
    lib.close()


def _ids(library: Library) -> dict[str, int]:
    return {title: pid for pid, (title, _) in library.titles(sorted(set(library.snippets.pieces.tolist()))).items()}


def _clip(dataset: Path, seconds: float = 12.0) -> np.ndarray:
    import soundfile as sf

    wave, _ = sf.read(ds.audio_path(dataset, TEST_PIECE), dtype="float32")
    return wave[: int(seconds * SAMPLE_RATE)]


def _nearest_among(library: Library, pieces: list[int], queries: np.ndarray, k: int) -> list[set[int]]:
    """Brute-force k nearest snippet ids among `pieces` (the answer a correct view must give)."""
    rows = [library.piece_snippets(p) for p in pieces]
    ids = np.concatenate([r.ids for r in rows])
    sims = queries @ np.concatenate([r.vectors for r in rows]).T
    return [set(ids[np.argsort(-row, kind="stable")[:k]].tolist()) for row in sims]


def test_a_left_out_piece_is_never_found(library: Library, dataset: Path) -> None:
    ids = _ids(library)
    clip = _clip(dataset)
    present = identify(library, clip)
    assert ids[TEST_PIECE] in [p.id for p in present.pieces]
    for gone in ({ids[TEST_PIECE]}, {ids[TEST_PIECE], ids[VAL_PIECE]}):
        absent = identify(library.without(gone), clip)
        assert absent.pieces and not gone & {p.id for p in absent.pieces}
    assert identify(library.without(set()), clip).pieces == present.pieces  # leaving nothing out changes nothing


@pytest.mark.parametrize("left_out", [[TEST_PIECE], [TRAIN_PIECE, VAL_PIECE]])
def test_a_view_searches_exactly_the_remaining_pieces(library: Library, dataset: Path, left_out: list[str]) -> None:
    # one piece left out takes the deny-list path, two the allow-list path: both must give the true k nearest
    ids = _ids(library)
    gone = {ids[p] for p in left_out}
    view = library.without(gone)
    _, queries = library.embed_recording(_clip(dataset, 6.0), library.settings.excerpt_hop)
    found = view.search(queries, TOP_K)
    kept = sorted(set(ids.values()) - gone)
    expected = _nearest_among(library, kept, queries, TOP_K)
    owners = library.snippets.piece_of(found.ravel())
    assert not np.isin(owners, list(gone)).any()
    agree = np.mean([len(set(row.tolist()) & want) / TOP_K for row, want in zip(found, expected, strict=True)])
    assert agree > 0.99  # exact search; only float ties may swap the last neighbour
    sizes = view.piece_sizes()
    assert all(sizes[p] == 0 for p in gone) and all(sizes[p] == library.piece_sizes()[p] > 0 for p in kept)


@pytest.mark.parametrize("read_back", [True, False])
def test_a_pieces_vectors_are_its_snippets_vectors_in_strip_order(library: Library, read_back: bool,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    # the alignment check of identification reads only the vectors; they must be the rows' own, in order,
    # whether the vector store hands them back from memory (FAISS Flat) or the database is read (IVF, Milvus)
    if not read_back:
        monkeypatch.setattr(library.index, "vectors", lambda ids: None)
    for pid in _ids(library).values():
        rows = library.piece_snippets(pid)
        assert len(rows.ids) > 0
        np.testing.assert_allclose(library.piece_vectors(pid), rows.vectors, atol=1e-6)  # FAISS re-normalises
        np.testing.assert_allclose(library.without([]).piece_vectors(pid), rows.vectors, atol=1e-6)
    assert library.piece_vectors(10_000).shape == (0, rows.vectors.shape[1])  # no such piece: no vectors
