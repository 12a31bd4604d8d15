"""Behaviour of the benchmarks' own measuring tools (their figures are only as good as these)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks.lilypond import lilypond_systems
from benchmarks.vector_scale import exact_neighbours, faiss_engine, query_sets, unit_vectors


def _staff_lines(y0: float, x0: float, length: float) -> str:
    return "".join(f'<g transform="translate({x0}, {y0 + i})">\n<line stroke-width="0.1" x1="0.05" y1="0" '
                   f'x2="{length}" y2="0"/>\n</g>\n' for i in range(5))  # fmt: skip


def test_a_lilypond_system_running_off_the_page_is_scored_as_printed() -> None:
    # LilyPond found no line break: the second system runs on to x = 1,146 on a page 119.5 wide
    svg = ('<svg viewBox="0.0000 -0.0000 119.5016 169.0094">' + _staff_lines(14, 14.2, 99.5)
           + _staff_lines(24, 14.2, 99.5) + _staff_lines(36, 5.7, 1140.6) + _staff_lines(50, 5.7, 1086.3) + "</svg>")
    systems, width = lilypond_systems(svg)
    assert width == 119.5016
    assert len(systems) == 2
    assert systems[0][2] < width  # a system inside the page keeps its own right end
    assert systems[1][2] == width  # the one running off the page ends at the page edge


def test_visiting_more_ivf_lists_finds_more_true_neighbours() -> None:
    vectors = unit_vectors(8_000, seed=0)
    queries = query_sets(vectors, recordings=3, seed=0)
    rows = faiss_engine("IVF64,Flat", vectors, queries, exact_neighbours(vectors, queries), nprobes=(64,))
    assert [r["engine"] for r in rows] == ["faiss IVF64,Flat nprobe 16", "faiss IVF64,Flat nprobe 64"]
    assert rows[1]["recall@25"] == 1.0  # every list visited: exact search
    assert rows[0]["recall@25"] < rows[1]["recall@25"]
    assert np.isfinite(rows[0]["p50_ms"])


def test_voice_distance_ignores_loudness_and_sees_other_notes() -> None:
    """`sheetid eval voices` compares voices, not levels: the same music 20 dB louder scores 1, the same
    spectrogram with every note a fifth higher scores clearly less."""
    from benchmarks.voices import median_frame_cosine
    from model.audio import N_BINS

    rng = np.random.default_rng(0)
    lin = np.zeros((200, N_BINS))
    for t in range(0, 200, 10):  # a chord every half second, each note with two partials
        for b in rng.choice(np.arange(10, 50), size=3, replace=False):
            lin[t : t + 8, b] += 5.0
            lin[t : t + 8, b + 16] += 2.0
    spec = np.log10(1.0 + lin).astype(np.float32)
    louder = np.log10(1.0 + 10.0 * lin).astype(np.float32)
    fifth = np.roll(spec, 9, axis=1)  # 16 bins per octave: a fifth is about 9 bins
    assert median_frame_cosine(louder, spec) > 0.999
    assert median_frame_cosine(fifth, spec) < 0.5


def test_hub_scores_ignore_the_snippets_own_piece_and_flag_snippets_near_everyone() -> None:
    """A snippet's hub score comes from other pieces' audio only (its own rendition would make its true
    matches look like a hub), and a snippet close to every piece's audio scores above a distinct one."""
    from types import SimpleNamespace

    from benchmarks.hubness import hub_scores
    from indexer.snippet_map import PieceSnippets

    common = unit_vectors(1, seed=1)[0]  # a sound every piece's audio holds (a cadence, say)
    reference = unit_vectors(60, seed=2)
    reference[::6] = common  # ten excerpts, one in six of every piece's
    reference_pieces = np.repeat(np.arange(1, 7), 10)
    mine = reference[10:12].copy()  # piece 2's own audio, word for word
    vectors = np.stack([common, mine[0], mine[1], unit_vectors(1, seed=3)[0]]).astype(np.float32)
    snippets = {2: PieceSnippets(np.array([0, 1, 2, 3]), np.zeros(4), np.ones(4), np.zeros(4), np.zeros((4, 4)),
                                 vectors)}  # fmt: skip
    library = SimpleNamespace(snippets=SimpleNamespace(ids=np.arange(4), pieces=np.full(4, 2)),
                              piece_snippets=snippets.__getitem__)  # fmt: skip
    hub = hub_scores(library, reference.astype(np.float32), reference_pieces, k=3)  # type: ignore[arg-type]
    assert hub[0] > 0.99  # near the common sound in the other pieces' audio
    assert hub[1] < 0.9 and hub[2] < 0.9  # its own audio is skipped: exact copies would score 1
    assert hub[0] > hub[3]


def test_snippet_readings_at_one_width_and_one_tempo_are_the_table_2_figures(dataset: Path) -> None:
    # `sheetid eval snippets --widths/--tempi` crops the strip and the spectrogram itself; read once, its
    # figures must be those of the training's own validation protocol.
    from benchmarks.snippets import evaluate_checkpoint, evaluate_readings

    _, reference = evaluate_checkpoint(None, dataset, "test")
    _, once = evaluate_readings(None, dataset, "test", (1.0,), (1.0,))
    assert once["candidates"] == reference["candidates"] > 20
    assert once["audio_to_sheet"] == reference["audio_to_sheet"]
    assert once["sheet_to_audio"] == reference["sheet_to_audio"]


def test_a_ranking_setting_is_validated_as_the_service_would_read_it() -> None:
    import pytest
    import typer

    from benchmarks.cli import _setting

    assert _setting("query_tempi=[0.7, 0.5]") == {"query_tempi": (0.7, 0.5)}
    assert _setting("query_readings=mean") == {"query_readings": "mean"}
    for bad in ("query_readings=median", "no_such_field=1", "top_k"):
        with pytest.raises(typer.BadParameter):
            _setting(bad)
