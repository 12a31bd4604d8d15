"""The library through its real path: PDFs from the data engine → systems → snippets → FAISS + SQLite."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sqlalchemy import func, inspect, select, text

from indexer.errors import BadInput
from indexer.library import Library
from indexer.settings import Settings
from indexer.store import Piece, Snippet, Status, make_engine, migrate, vectors_from
from indexer.vector_milvus import MilvusStore
from indexer.vector_store import open_vector_store
from model import checkpoint
from tests.conftest import TEST_PIECE, TRAIN_PIECE, VAL_PIECE
from tests.hostile import bad_pdfs


def _store_matches_database(lib: Library) -> bool:
    """The vector store holds exactly the indexed snippets' ids (a full comparison)."""
    with lib.Session() as s:
        indexed = s.scalars(select(Snippet.id).join(Piece).where(Piece.status == Status.indexed))
        return np.array_equal(np.sort(np.fromiter(indexed, np.int64)), lib.index.ids())


def _lose_index(lib: Library, settings: Settings) -> None:
    """Lose the vector store's contents (FAISS: the file; Milvus: the collection)."""
    if isinstance(lib.index, MilvusStore):
        lib.index.client.drop_collection(lib.index.name)
    else:
        settings.index_path.unlink()


def _snapshot(lib: Library) -> tuple[int, int, int]:
    with lib.Session() as s:
        return (s.scalar(select(func.count()).select_from(Piece)) or 0,
                s.scalar(select(func.count()).select_from(Snippet)) or 0, lib.index.ntotal)  # fmt: skip


def test_migration_on_empty_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    migrate(url)
    engine = make_engine(url)
    assert {"pieces", "pages", "systems", "snippets", "jobs", "library_state"} <= set(inspect(engine).get_table_names())
    with engine.connect() as c:
        assert c.execute(text("select version_num from alembic_version")).scalar() == "0002"
        assert c.execute(text("pragma journal_mode")).scalar() == "wal"
    migrate(url)  # idempotent


def test_index_dedup_and_delete(settings: Settings, pdfs: dict[str, bytes]) -> None:
    lib = Library(settings)
    first = lib.add_pdf(pdfs[TRAIN_PIECE], title="Chorale", composer="Bach")
    again = lib.add_pdf(pdfs[TRAIN_PIECE], title="Another title")
    assert first.created and not again.created and again.piece_id == first.piece_id
    other = lib.add_pdf(pdfs[VAL_PIECE], filename="../../etc/Dichterliebe_no2.pdf")
    counts = lib.counts()
    assert counts[first.piece_id] > 20 and lib.index.ntotal == sum(counts.values())
    with lib.Session() as s:
        piece = s.get(Piece, other.piece_id)
        assert piece is not None and piece.status == Status.indexed
        assert "/" not in piece.title
        versions = set(s.scalars(select(Snippet.model_version)))
    assert versions == {lib.model_version}
    assert (settings.pages_dir / str(first.piece_id) / "1.png").exists()
    assert _store_matches_database(lib)

    assert lib.remove(first.piece_id)
    assert not lib.remove(first.piece_id)
    assert lib.index.ntotal == counts[other.piece_id]
    assert not (settings.pages_dir / str(first.piece_id)).exists()
    assert set(lib.snippets.piece_of(lib.snippets.ids)) == {other.piece_id}
    assert _store_matches_database(lib)


def test_restart_rebuilds_a_missing_or_stale_index(settings: Settings, pdfs: dict[str, bytes]) -> None:
    lib = Library(settings)
    lib.add_pdf(pdfs[TRAIN_PIECE])
    n = lib.index.ntotal
    lib.close()
    restarted = Library(settings)
    assert restarted.recover()["rebuilt_index"] is False
    _lose_index(restarted, settings)
    reopened = Library(settings)
    assert reopened.index.ntotal == n and _store_matches_database(reopened)
    reopened.index.add(np.array([10**9]), np.array([1]), np.ones((1, 32), np.float32))  # store ahead of the database
    again = Library(settings)
    assert again.index.ntotal == n and _store_matches_database(again)


def test_crash_mid_ingest_leaves_no_visible_piece(settings: Settings, pdfs: dict[str, bytes],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    lib = Library(settings)
    lib.add_pdf(pdfs[TRAIN_PIECE])
    before = lib.index.ntotal

    class Crash(BaseException):
        pass

    real_add = lib.index.add

    def crash(*args: object) -> None:  # the process "dies" once the vectors are durable in the store
        real_add(*args)  # type: ignore[arg-type]
        raise Crash

    def no_cleanup(*_: object) -> None:  # ... so no clean-up code runs either
        raise Crash

    monkeypatch.setattr(lib.index, "add", crash)
    monkeypatch.setattr(lib, "_discard", no_cleanup)
    with pytest.raises(Crash):
        lib.add_pdf(pdfs[VAL_PIECE])
    monkeypatch.undo()
    assert lib.index.ntotal > before  # half-ingested: vectors stored, piece pending
    # simulate the other kind of crash too: a pending row left behind with its snippets
    with lib.Session.begin() as s:
        s.add(Piece(title="half done", sha256="0" * 64, pages=1, status=Status.pending, model_version="x"))
    reopened = Library(settings)
    with reopened.Session() as s:
        assert s.scalar(select(func.count()).select_from(Piece).where(Piece.status != Status.indexed)) == 0
    assert reopened.index.ntotal == before == sum(reopened.counts().values())
    assert _store_matches_database(reopened)
    assert reopened.add_pdf(pdfs[VAL_PIECE]).created  # re-uploading completes it
    assert _store_matches_database(reopened)


def test_bad_pdfs_are_refused_and_nothing_is_stored(settings: Settings, pdfs: dict[str, bytes]) -> None:
    settings = settings.model_copy(update={"max_pdf_pages": 60})
    lib = Library(settings)
    lib.add_pdf(pdfs[TRAIN_PIECE])
    before = _snapshot(lib)
    for name, data in bad_pdfs(pdfs[TRAIN_PIECE]).items():
        with pytest.raises(BadInput):
            lib.add_pdf(data)
        assert _snapshot(lib) == before, name
    assert sorted(p.name for p in settings.pages_dir.iterdir()) == ["1"]


def test_model_change_hides_pieces_until_reindexed(settings: Settings, pdfs: dict[str, bytes], tmp_path: Path) -> None:
    lib = Library(settings)
    lib.add_pdf(pdfs[TEST_PIECE])
    n = lib.index.ntotal
    lib.close()
    model, _, extra = checkpoint.load()
    with torch.no_grad():
        model.cca.proj_x.mul_(-1.0)  # a different model: same shapes, other embeddings
    other = tmp_path / "other.pt"
    new_version = checkpoint.save(model, other, extra)
    changed = Library(settings, weights=other)
    assert changed.model_version == new_version
    assert changed.index.ntotal == 0  # no query may mix model versions
    with changed.Session() as s:
        assert {p.status for p in s.scalars(select(Piece))} == {Status.stale}
    assert changed.reindex() == 1
    assert changed.index.ntotal == n
    with changed.Session() as s:
        assert set(s.scalars(select(Snippet.model_version))) == {new_version}


def _stored_vectors(lib: Library) -> np.ndarray:
    """The library's snippet vectors as its database keeps them, in strip order."""
    with lib.Session() as s:
        return vectors_from(list(s.scalars(select(Snippet.vector).order_by(Snippet.strip_x))))


def test_vectors_averaged_over_strip_widths_are_their_own_version(settings: Settings, pdfs: dict[str, bytes]) -> None:
    lib = Library(settings)
    lib.add_pdf(pdfs[TEST_PIECE])
    engraved = _stored_vectors(lib)
    lib.close()
    wider = Library(settings.model_copy(update={"snippet_widths": (0.9, 1.2)}))
    assert wider.model_version != lib.model_version and wider.model_version.startswith(lib.model_version)
    assert wider.index.ntotal == 0  # vectors read another way are not mixed with the engraved ones
    assert wider.reindex() == 1
    averaged = _stored_vectors(wider)
    assert averaged.shape == engraved.shape
    np.testing.assert_allclose(np.linalg.norm(averaged, axis=1), 1.0, atol=1e-5)
    cosine = np.sum(averaged * engraved, axis=1)
    assert np.median(cosine) > 0.8 and np.median(cosine) < 0.999  # the same snippets, read more than one way


@pytest.mark.parametrize("factory", ["Flat", "HNSW32", "IVF4,Flat"])
def test_the_faiss_store_hands_back_its_vectors_or_says_it_cannot(tmp_path: Path, factory: str) -> None:
    # identification's alignment check reads a piece's vectors from the store when it keeps them in memory
    store = open_vector_store("faiss", tmp_path, "v-test", faiss_factory=factory)
    vectors = np.random.default_rng(0).normal(size=(300, 32)).astype(np.float32)
    store.add(np.arange(300) + 7, np.zeros(300, np.int64), vectors.copy())
    back = store.vectors(np.array([306, 7, 100]))
    if factory.startswith("IVF"):  # no direct map: the caller reads the database
        assert back is None
        return
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    assert back is not None
    np.testing.assert_allclose(back, unit[[299, 0, 93]], atol=1e-6)
    assert store.vectors(np.array([5])) is None  # an id it does not hold
