"""The score library: two-phase ingest, dedup by content hash, deletion, reindexing, crash recovery.

Invariant: a piece is visible to queries only once its row says `indexed`, which happens after its
vectors are committed to the database and to the vector store (FAISS saved, or Milvus acknowledged). At
start-up half-done pieces whose job is not running any more are removed and the store is checked against
the database (rebuilt or reconciled if they disagree), so a crash at any point leaves a consistent library.
Several processes may share one library when the store is shared (Milvus): each keeps its snippet map
in step with the database through the library generation (indexer/generation.py).
"""

from __future__ import annotations

import hashlib
import shutil
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image
from sqlalchemy import Select, delete, func, select, update

from indexer import generation
from indexer.embed import EmbeddedScore, embed_pages, mean_reading, vector_version
from indexer.errors import NotIndexed
from indexer.job_queue import JobQueue
from indexer.pdf import inspect_pdf, pdf_metadata, rasterise, title_from_filename
from indexer.settings import Settings, get_settings
from indexer.snippet_map import PieceSnippets, SnippetMap
from indexer.store import (
    Page,
    Piece,
    Snippet,
    Status,
    SystemRow,
    make_engine,
    migrate,
    session_factory,
    vector_bytes,
    vectors_from,
)
from indexer.vector_store import VectorStore, open_vector_store
from model import checkpoint
from model.audio import spectrogram
from model.embed import EMBED_DIM, embed_recording_spectrogram

if TYPE_CHECKING:
    from indexer.library_view import LibraryView

Progress = Callable[[str, float], None]  # (stage, fraction done)


@dataclass
class AddResult:
    piece_id: int
    created: bool  # False when the same PDF (by content hash) was already in the library
    pages_without_music: list[int] = field(default_factory=list)  # 1-based pages skipped (title, text, blank)


class Library:
    def __init__(self, settings: Settings, weights: Path | None = None) -> None:
        self.settings = settings
        self.device = checkpoint.pick_device(settings.device)
        self.model, version, self.model_extra = checkpoint.load(weights or settings.weights, self.device)
        self.model_version = vector_version(version, settings.snippet_widths)  # what stored vectors depend on
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        migrate(settings.db_url)  # migrations always run before the database is used
        self.engine = make_engine(settings.db_url)
        self.Session = session_factory(self.engine)
        self.write_lock = threading.Lock()  # one writer at a time; searches go on meanwhile
        self.map_lock = threading.Lock()  # guards the snippet map and the generation it reflects
        self.snippets = SnippetMap()
        self.generation = -1  # library generation the snippet map reflects
        self.queue = JobQueue(self.Session, settings.job_lease_s)
        self.index: VectorStore = open_vector_store(settings.vector_store, settings.data_dir, self.model_version,
                                                    settings.index_factory, settings.milvus_index,
                                                    settings.milvus_consistency)  # fmt: skip
        self.recover()

    # ---- start-up -------------------------------------------------------------------------------
    def recover(self) -> dict[str, int | bool]:
        """Drop half-ingested pieces, hide other-model pieces, make the vector store agree with the database.

        A pending piece whose job still holds a live lease belongs to a worker that is working on it
        (another process): it is left alone. Any other pending piece is the remains of a crash.
        """
        with self.write_lock:
            live = self.queue.live_sha256s()
            with self.Session.begin() as s:
                pending = list(s.scalars(select(Piece.id).where(Piece.status == Status.pending,
                                                                Piece.sha256.not_in(live))))  # fmt: skip
                s.execute(update(Piece).where(Piece.status == Status.indexed,
                                              Piece.model_version != self.model_version)
                          .values(status=Status.stale))  # fmt: skip
            for pid in pending:
                self._discard(pid)
            rows = self._indexed_snippets()
            consistent = self.index.agrees_with(rows[0])
            if not consistent:
                self._rebuild_index() if not self.index.shared else self._reconcile_shared()
            self.refresh(force=True)
        return {"removed_pending": len(pending), "rebuilt_index": not consistent, "vectors": self.index.ntotal}

    def refresh(self, force: bool = False) -> bool:
        """Reload the snippet map when another process changed the library; True when it reloaded."""
        with self.Session() as s:
            seen = generation.current(s)
        if seen == self.generation and not force:
            return False
        ids, pieces, strip_x, _ = self._indexed_snippets()
        fresh = SnippetMap()
        fresh.set(ids, pieces, strip_x)
        with self.map_lock:
            self.snippets, self.generation = fresh, seen  # one assignment: readers see old or new map
        return True

    def _changed(self, new_generation: int, apply: Callable[[SnippetMap], None]) -> None:
        """After our own commit: update the map in place when no other process changed the library since."""
        with self.map_lock:
            if new_generation == self.generation + 1:
                fresh = SnippetMap()
                fresh.set(self.snippets.ids, self.snippets.pieces, self.snippets.strip_x)
                apply(fresh)
                self.snippets, self.generation = fresh, new_generation
        # otherwise the map is behind someone else's change too: the next refresh() reloads it

    def _reconcile_shared(self) -> None:
        """Shared store: remove vectors no snippet row knows, restore indexed vectors that are missing."""
        held = self.index.ids()  # read before the database: every id held now has its rows committed already
        with self.Session() as s:
            known = np.array(list(s.scalars(select(Snippet.id).where(Snippet.model_version == self.model_version))),
                             np.int64)  # fmt: skip
        stray = np.setdiff1d(held, known)
        if len(stray):
            self.index.remove(stray)
        ids, pieces, _, vectors = self._indexed_snippets(with_vectors=True)
        missing = ~np.isin(ids, held)
        if missing.any():
            self.index.add(ids[missing], pieces[missing], vectors[missing])

    def _indexed_snippets(self, with_vectors: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        cols = [Snippet.id, Snippet.piece_id, Snippet.strip_x] + ([Snippet.vector] if with_vectors else [])
        q = (select(*cols).join(Piece, Piece.id == Snippet.piece_id)
             .where(Piece.status == Status.indexed, Snippet.model_version == self.model_version))  # fmt: skip
        with self.Session() as s:
            rows = s.execute(q).all()
        ids = np.array([r[0] for r in rows], np.int64)
        pieces = np.array([r[1] for r in rows], np.int64)
        strip_x = np.array([r[2] for r in rows], np.float64)
        vectors = vectors_from([r[3] for r in rows]) if with_vectors else np.zeros((0, EMBED_DIM), np.float32)
        return ids, pieces, strip_x, vectors

    def _rebuild_index(self) -> None:
        ids, pieces, strip_x, vectors = self._indexed_snippets(with_vectors=True)
        self.index.rebuild(ids, pieces, vectors)
        fresh = SnippetMap()
        fresh.set(ids, pieces, strip_x)
        with self.map_lock:
            self.snippets = fresh

    # ---- ingest ---------------------------------------------------------------------------------
    def add_pdf(self, data: bytes, title: str | None = None, composer: str | None = None,
                filename: str | None = None, progress: Progress | None = None) -> AddResult:  # fmt: skip
        """Index a score PDF. Bad input raises BadInput before anything is stored."""
        st = self.settings
        sha = hashlib.sha256(data).hexdigest()
        with self.Session() as s:
            existing = s.scalars(select(Piece).where(Piece.sha256 == sha)).first()
            if existing is not None and existing.status == Status.indexed:
                return AddResult(existing.id, created=False)
        n_pages = inspect_pdf(data, st.max_pdf_pages, st.max_page_inches, st.pdf_dpi, st.max_page_pixels)
        meta_title, meta_composer = pdf_metadata(data)
        pages = rasterise(data, st.pdf_dpi, st.max_page_pixels)
        if progress:
            progress("rasterised", 0.1)
        score = self._embed_for_index(pages)
        if progress:
            progress("embedded", 0.9)
        with self.write_lock:
            # phase 1: the piece row, invisible to queries while pending
            with self.Session() as s:
                earlier = s.execute(select(Piece.id, Piece.status).where(Piece.sha256 == sha)).first()
            if earlier is not None and earlier.status == Status.indexed:  # a concurrent upload of the file won
                return AddResult(earlier.id, created=False)
            if earlier is not None:  # a pending or stale earlier attempt (maybe a dead worker's): redo it
                self._discard(earlier.id)
            with self.Session.begin() as s:
                piece = Piece(title=(title or meta_title or title_from_filename(filename) or "Untitled")[:300],
                              composer=(composer or meta_composer or None), sha256=sha, pages=n_pages,
                              status=Status.pending, model_version=self.model_version)  # fmt: skip
                s.add(piece)
            pid = piece.id
            try:
                ids = self._store_vectors(pid, score.page_images, score)
                # phase 2: vectors into the store (durable on return), then the piece becomes visible
                self.index.add(ids, np.full(len(ids), pid, np.int64), score.vectors)
                with self.Session.begin() as s:
                    s.execute(update(Piece).where(Piece.id == pid).values(status=Status.indexed))
                    new_generation = generation.bump(s)
                centres = score.centres.astype(np.float64)
                self._changed(new_generation, lambda m: m.add(ids, pid, centres))
            except BaseException:
                self._discard(pid)
                raise
        if progress:
            progress("indexed", 1.0)
        return AddResult(pid, created=True, pages_without_music=score.pages_without_music)

    def _embed_for_index(self, pages: list[np.ndarray]) -> EmbeddedScore:
        st = self.settings
        return mean_reading(embed_pages(self.model, pages, st.snippet_hop, self.device, st.snippet_widths))

    def _store_vectors(self, pid: int, pages: list[np.ndarray], score) -> np.ndarray:  # type: ignore[no-untyped-def]
        page_dir = self.settings.pages_dir / str(pid)
        page_dir.mkdir(parents=True, exist_ok=True)
        with self.Session.begin() as s:
            for i, page in enumerate(pages):
                Image.fromarray(page).save(page_dir / f"{i + 1}.png", optimize=False)
                s.add(Page(piece_id=pid, number=i + 1, width=page.shape[1], height=page.shape[0],
                           image=f"pages/{pid}/{i + 1}.png"))  # fmt: skip
            for i, (sysm, off) in enumerate(zip(score.strip.systems, score.strip.offsets, strict=True)):
                s.add(SystemRow(piece_id=pid, index=i, page=sysm.page + 1, top=sysm.top, bottom=sysm.bottom,
                                left=sysm.left, right=sysm.right, staff_space=sysm.staff_space,
                                strip_offset=float(off)))  # fmt: skip
            rows = [Snippet(piece_id=pid, system=int(sy), page=int(pg) + 1, strip_x=float(x),
                            x0=float(b[0]), y0=float(b[1]), x1=float(b[2]), y1=float(b[3]),
                            model_version=self.model_version, vector=vector_bytes(v))
                    for x, sy, pg, b, v in zip(score.centres, score.systems, score.pages, score.boxes,
                                               score.vectors, strict=True)]  # fmt: skip
            s.add_all(rows)
            s.flush()
            return np.array([r.id for r in rows], np.int64)

    def _discard(self, pid: int) -> None:
        """Undo an ingest (failed, or a removal): vectors first, then rows, then page images.

        Vectors go first so that a crash in between leaves rows without vectors (found and repaired at
        start-up) rather than vectors that no row accounts for.
        """
        with self.Session() as s:
            ids = np.array(list(s.scalars(select(Snippet.id).where(Snippet.piece_id == pid))), np.int64)
        try:
            self.index.remove(ids, [pid])
            rebuild = False
        except RuntimeError:  # index types without removal (FAISS HNSW): rebuilt from the database below
            rebuild = True
        with self.Session.begin() as s:
            s.execute(delete(Snippet).where(Snippet.piece_id == pid))
            s.execute(delete(Piece).where(Piece.id == pid))
            new_generation = generation.bump(s)
        self._changed(new_generation, lambda m: m.drop_piece(pid))
        if rebuild:
            self._rebuild_index()
        shutil.rmtree(self.settings.pages_dir / str(pid), ignore_errors=True)

    # ---- library management ---------------------------------------------------------------------
    def remove(self, piece_id: int) -> bool:
        with self.write_lock:
            with self.Session() as s:
                if s.get(Piece, piece_id) is None:
                    return False
            self._discard(piece_id)
            return True

    def reindex(self, progress: Progress | None = None) -> int:
        """Re-embed every piece from its stored page images with the current model."""
        with self.Session() as s:
            todo = list(s.scalars(select(Piece.id).where(Piece.status != Status.pending)))
        for n, pid in enumerate(todo):
            try:
                pages = self.page_images(pid)
            except NotIndexed:  # removed since the list was read
                continue
            score = self._embed_for_index(pages)
            with self.write_lock:
                with self.Session.begin() as s:
                    s.execute(delete(Snippet).where(Snippet.piece_id == pid))
                    s.execute(delete(SystemRow).where(SystemRow.piece_id == pid))
                    s.execute(delete(Page).where(Page.piece_id == pid))
                    s.execute(update(Piece).where(Piece.id == pid).values(status=Status.pending))
                self._store_vectors(pid, score.page_images, score)
                with self.Session.begin() as s:
                    s.execute(update(Piece).where(Piece.id == pid)
                              .values(status=Status.indexed, model_version=self.model_version))  # fmt: skip
            if progress:
                progress("reindexing", (n + 1) / len(todo))
        with self.write_lock:
            self._rebuild_index()
            with self.Session.begin() as s:
                generation.bump(s)
            self.refresh(force=True)
        return len(todo)

    # ---- queries ----------------------------------------------------------------------------------
    def embed_recording(self, wave: np.ndarray, hop_frames: int) -> tuple[np.ndarray, np.ndarray]:
        """(excerpt centre frames, unit vectors) of a mono 22.05 kHz recording, with the library's model."""
        return self.embed_spectrogram(spectrogram(wave), hop_frames)

    def embed_spectrogram(self, spec: np.ndarray, hop_frames: int, tempo: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """embed_recording for a spectrogram already computed (a dataset rendition's, say), or as if played
        `tempo` times as fast (model.embed.embed_recording_spectrogram); centres in `spec`'s frames."""
        return embed_recording_spectrogram(self.model, spec, hop_frames, self.device, tempo)

    def piece_sizes(self) -> np.ndarray:
        """Indexed snippets per piece id (index = piece id), including pieces other processes indexed.

        Identification starts here, so this is where a replica notices the library's generation moved.
        """
        self.refresh()
        return self.snippets.piece_sizes()

    def search(self, vectors: np.ndarray, k: int) -> np.ndarray:
        """Ids of each vector's k nearest snippets, (n, k); -1 where fewer exist."""
        return self.index.search(vectors, k)[1]

    def without(self, pieces: Iterable[int]) -> LibraryView:
        """This library as if `pieces` had never been indexed (evaluations leave the query's piece out)."""
        from indexer.library_view import LibraryView

        return LibraryView(self, pieces)

    def piece_snippets(self, piece_id: int) -> PieceSnippets:
        """The piece's current-model snippets in strip order, with their page boxes and vectors."""
        with self.Session() as s:
            rows = s.execute(self._in_strip_order(piece_id, Snippet.id, Snippet.strip_x, Snippet.page,
                                                  Snippet.system, Snippet.x0, Snippet.y0, Snippet.x1, Snippet.y1,
                                                  Snippet.vector)).all()  # fmt: skip
        return PieceSnippets(
            ids=np.array([r[0] for r in rows], np.int64),
            strip_x=np.array([r[1] for r in rows], np.float64),
            page=np.array([r[2] for r in rows], np.int64),
            system=np.array([r[3] for r in rows], np.int64),
            boxes=np.array([r[4:8] for r in rows], np.float64).reshape(-1, 4),
            vectors=vectors_from([r[8] for r in rows]),
        )

    def piece_vectors(self, piece_id: int) -> np.ndarray:
        """The piece's current-model snippet vectors in strip order: piece_snippets without the page geometry,
        which identification's alignment check (service/verify.py) does not need. Read from the vector store
        where it keeps them in memory (FAISS Flat, HNSW), else from the database."""
        ids = self.snippets.piece_ids(piece_id)
        held = self.index.vectors(ids) if len(ids) else None
        if held is not None:
            return held
        with self.Session() as s:
            blobs = s.scalars(self._in_strip_order(piece_id, Snippet.vector)).all()
        return vectors_from(list(blobs))

    def _in_strip_order(self, piece_id: int, *columns: Any) -> Select:
        """The query for `columns` of the piece's current-model snippets, in strip order."""
        return (select(*columns).where(Snippet.piece_id == piece_id, Snippet.model_version == self.model_version)
                .order_by(Snippet.strip_x))  # fmt: skip

    def page_images(self, piece_id: int) -> list[np.ndarray]:
        """The piece's pages as stored at indexing (flat-fielded and straightened), in page order."""
        with self.Session() as s:
            piece = s.get(Piece, piece_id)
            paths = [self.settings.data_dir / p.image for p in piece.page_rows] if piece is not None else []
        if not paths:
            raise NotIndexed(f"piece {piece_id} has no stored pages")
        return [np.asarray(Image.open(path).convert("L")) for path in paths]

    def dense_snippets(self, piece_id: int, hop: int, widths: tuple[float, ...] = ()) -> PieceSnippets:
        """The piece's snippets re-embedded from its stored pages on a `hop`-px grid (not indexed: ids −1),
        also read at `widths` (embed_pages), for alignment, whose precision the indexed grid limits."""
        score = embed_pages(self.model, self.page_images(piece_id), hop, self.device, widths)
        return PieceSnippets(ids=np.full(len(score.centres), -1, np.int64), strip_x=score.centres.astype(np.float64),
                             page=score.pages.astype(np.int64) + 1, system=score.systems.astype(np.int64),
                             boxes=score.boxes.astype(np.float64), vectors=score.vectors,
                             vectors_at_width=score.vectors_at_width)  # fmt: skip

    def titles(self, piece_ids: list[int]) -> dict[int, tuple[str, str | None]]:
        """(title, composer) of each existing piece among `piece_ids`."""
        with self.Session() as s:
            rows = s.execute(select(Piece.id, Piece.title, Piece.composer).where(Piece.id.in_(piece_ids))).all()
        return {int(r[0]): (r[1], r[2]) for r in rows}

    def counts(self) -> dict[int, int]:
        """Snippets per piece."""
        with self.Session() as s:
            return dict(s.execute(select(Snippet.piece_id, func.count()).group_by(Snippet.piece_id)).all())  # type: ignore[arg-type]

    def close(self) -> None:
        """Close the vector store's connection (Milvus) and the database pool."""
        self.index.close()
        self.engine.dispose()


def open_library(data_dir: Path | None = None) -> Library:
    """The library of the configured settings (CLI, benchmarks); `data_dir` points at another one."""
    from model.threads import use_threads

    settings = get_settings()
    if data_dir is not None:
        settings = settings.model_copy(update={"data_dir": data_dir, "database_url": None})
    use_threads(settings.threads)
    return Library(settings)


__all__ = ["AddResult", "Library", "PieceSnippets", "open_library"]
