"""`sheetid eval hubness`: does a per-snippet hubness penalty help identification? (validation)

Issue 13 lists per-snippet hubness correction among the ways to keep votes honest as the library grows: some
sheet snippets ("hubs") sit close to the audio of many pieces and collect chance votes from every query.
In the spirit of CSLS (cross-domain similarity local scaling), each snippet gets a hub score, the mean
cosine of its `K_REFERENCE` nearest excerpts of a reference audio set, and a query's neighbours are
re-ranked by cosine − β · hub score among its `FETCH` nearest before the usual top-k votes.

The reference audio is training renditions only (one per training piece, voices taken in turn), and a
snippet is never scored against its own piece's audio: a deployed library's PDFs are not in any reference
set, and a training piece's own rendition would make its true matches look like hubs. β = 0 is the
shipped search. Top-1 per condition comes from `sheetid eval ranking`'s queries (same seed, same excerpts).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import faiss
import numpy as np

from benchmarks.dataset_library import index_dataset
from benchmarks.ranking import EXCERPTS, evaluate_ranking
from indexer.library import Library
from indexer.library_view import LibraryView
from model.data import dataset as ds

K_REFERENCE = 10  # reference excerpts whose mean cosine is a snippet's hub score
FETCH = 75  # neighbours re-ranked per query excerpt (3 × the votes' top 25)
REFERENCE_WINDOWS = 100_000  # reference excerpts at most (about 200 training pieces' renditions)
BETAS = (0.0, 0.5, 1.0, 2.0)


def reference_audio(library: Library, dataset: Path, ids: dict[str, int],
                    limit: int = REFERENCE_WINDOWS) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(unit vectors, library piece id) of training renditions' excerpts, one rendition per piece."""
    vectors: list[np.ndarray] = []
    owners: list[np.ndarray] = []
    total = 0
    for pid in ds.built_pieces(dataset, ["train"]):
        record = ds.load_record(dataset / ds.PIECES_DIR / f"{ds.piece_key(pid)}.npz")
        if not record.renditions or pid not in ids:
            continue
        spec = record.renditions[len(vectors) % len(record.renditions)].spec
        _, v = library.embed_spectrogram(spec, library.settings.excerpt_hop)
        vectors.append(v)
        owners.append(np.full(len(v), ids[pid], np.int64))
        total += len(v)
        if total >= limit:
            break
    if not vectors:
        raise ValueError(f"no training renditions in {dataset}: build them with `sheetid data build`")
    return np.concatenate(vectors).astype(np.float32), np.concatenate(owners)


def hub_scores(library: Library, reference: np.ndarray, reference_pieces: np.ndarray,
               k: int = K_REFERENCE) -> np.ndarray:  # fmt: skip
    """Hub score by snippet id: each snippet's mean cosine to its k nearest reference excerpts of other pieces."""
    index = faiss.IndexFlatIP(reference.shape[1])
    index.add(reference)
    by_id = np.zeros(int(library.snippets.ids.max()) + 1, np.float32)
    for piece in np.unique(library.snippets.pieces):
        snippets = library.piece_snippets(int(piece))
        own = int((reference_pieces == piece).sum())  # searched past, so k foreign excerpts always remain
        sims, rows = index.search(np.ascontiguousarray(snippets.vectors, np.float32), k + own)
        foreign = reference_pieces[rows] != piece
        by_id[snippets.ids] = np.array([s[f][:k].mean() for s, f in zip(sims, foreign, strict=True)])
    return by_id


class HubCorrected(LibraryView):
    """The whole library, its searches re-ranked by cosine − β · the neighbour's hub score."""

    def __init__(self, library: Library, hub_by_id: np.ndarray, beta: float, fetch: int = FETCH) -> None:
        super().__init__(library, [])
        self.hub_by_id, self.beta, self.fetch = hub_by_id, beta, fetch

    def search(self, vectors: np.ndarray, k: int) -> np.ndarray:
        sims, ids = self.library.index.search(vectors, max(k, self.fetch))
        adjusted = np.where(ids >= 0, sims - self.beta * self.hub_by_id[np.maximum(ids, 0)], -np.inf)
        order = np.argsort(-adjusted, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(ids, order, axis=1)


def evaluate_hubness(library: Library, dataset: Path, betas: tuple[float, ...] = BETAS, excerpts: int = EXCERPTS,
                     log: Callable[[str], None] = print) -> dict:  # fmt: skip
    ids = index_dataset(library, dataset, log=log)
    reference, reference_pieces = reference_audio(library, dataset, ids)
    log(f"hub scores of {len(library.snippets.ids)} snippets against {len(reference)} training excerpts")
    hub_by_id = hub_scores(library, reference, reference_pieces)
    hub = hub_by_id[library.snippets.ids]
    shipped: dict[str, object] = {"rerank": True, "rerank_vote_weight": library.settings.rerank_vote_weight}

    def view(beta: float) -> Callable[[Library], LibraryView]:
        return lambda lib: HubCorrected(lib, hub_by_id, beta)

    names = {f"beta={beta:g}": beta for beta in betas}
    result = evaluate_ranking(library, dataset, excerpts=excerpts, log=log, rankings=dict.fromkeys(names, shipped),
                              views={name: view(beta) for name, beta in names.items() if beta})  # fmt: skip
    return result | {
        "reference_excerpts": len(reference),
        "reference_pieces": len(np.unique(reference_pieces)),
        "hub_score": {"mean": float(hub.mean()), "std": float(hub.std()), "p99": float(np.percentile(hub, 99))},
        "fetch": FETCH,
        "k_reference": K_REFERENCE,
    }
