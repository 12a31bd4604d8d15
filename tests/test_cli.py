"""The `sheetid` commands through typer's runner, on a library the `index` command builds from fixture PDFs."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import soundfile as sf
from typer.testing import CliRunner

from cli import app
from indexer.settings import get_settings
from model.audio import SAMPLE_RATE
from model.data import dataset as ds
from tests.conftest import TEST_PIECE, TRAIN_PIECE, VAL_PIECE

runner = CliRunner()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory, dataset: Path) -> Iterator[Path]:
    """A data directory in SHEETID_DATA_DIR, plus a 20-s recording of the test piece beside it."""
    root = tmp_path_factory.mktemp("cli")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SHEETID_DATA_DIR", str(root / "lib"))
        get_settings.cache_clear()
        wave, _ = sf.read(ds.audio_path(dataset, TEST_PIECE), dtype="float32")
        sf.write(root / "take.wav", wave[: 20 * SAMPLE_RATE], SAMPLE_RATE)
        yield root
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def piece_ids(workdir: Path, dataset: Path) -> dict[str, int]:
    ids = {}
    for pid in (TRAIN_PIECE, VAL_PIECE, TEST_PIECE):
        r = runner.invoke(app, ["index", str(ds.pdf_path(dataset, pid)), "--title", pid])
        assert r.exit_code == 0, r.output
        ids[pid] = int(re.search(r"piece (\d+)", r.output).group(1))  # type: ignore[union-attr]
    return ids


def _run(*args: str) -> tuple[int, str]:
    r = runner.invoke(app, list(args))
    return r.exit_code, r.output


def test_index_lists_and_skips_what_is_indexed(piece_ids: dict[str, int], dataset: Path) -> None:
    code, out = _run("pieces", "--json")
    listing = json.loads(out)
    assert code == 0 and {p["title"]: p["id"] for p in listing} == piece_ids
    assert all(p["snippets"] > 0 and p["status"] == "indexed" for p in listing)
    code, out = _run("index", str(ds.pdf_path(dataset, TEST_PIECE)))
    assert code == 0 and "already indexed" in out and f"piece {piece_ids[TEST_PIECE]}" in out


def test_index_refuses_a_file_that_is_not_a_pdf(piece_ids: dict[str, int], workdir: Path) -> None:
    code, out = _run("index", str(workdir / "take.wav"))
    assert code == 1 and "refused" in out and "not a PDF" in out
    assert len(json.loads(_run("pieces", "--json")[1])) == len(piece_ids)


def test_identify_prints_the_ranking_with_titles(piece_ids: dict[str, int], workdir: Path) -> None:
    # which piece wins is the identification tests' business (tests/test_identify.py); here: the CLI reports
    # the service's ranking under the library's titles, as JSON and as text
    code, out = _run("identify", str(workdir / "take.wav"), "--json")
    assert code == 0, out
    answer = json.loads(out)
    titles = {i: t for t, i in piece_ids.items()}
    assert answer["pieces"] and all(p["title"] == titles[p["id"]] for p in answer["pieces"])
    assert 0.0 <= answer["confidence"] <= 1.0 and isinstance(answer["no_match"], bool)
    top = answer["pieces"][0]
    code, out = _run("identify", str(workdir / "take.wav"))
    assert code == 0 and f"1. [{top['id']}] {top['title']}" in out
    assert ("NO MATCH" in out) == answer["no_match"]


def test_refusals_are_messages_without_http(piece_ids: dict[str, int], workdir: Path) -> None:
    text = workdir / "notes.txt"
    text.write_text("not a recording")
    code, out = _run("identify", str(text))
    assert code == 1 and "refused" in out and "unsupported audio type" in out
    assert not re.search(r"\b(415|422|HTTP)\b", out)
    code, out = _run("align", str(workdir / "take.wav"), "--piece", "999")
    assert code == 1 and "no snippets" in out


def test_align_follows_the_recording_through_the_page(piece_ids: dict[str, int], workdir: Path) -> None:
    code, out = _run("align", str(workdir / "take.wav"), "--piece", str(piece_ids[TEST_PIECE]), "--json")
    assert code == 0, out
    points = json.loads(out)["points"]
    times = [p["time"] for p in points]
    assert len(points) > 10 and times == sorted(times) and times[-1] > 15
    xs = [p["x"] for p in points if p["system"] == points[0]["system"]]
    assert xs[-1] > xs[0]  # within a system the music moves right


def test_remove_deletes_once(piece_ids: dict[str, int]) -> None:
    # runs last in this module: it shrinks the shared library
    code, out = _run("remove", str(piece_ids[TRAIN_PIECE]))
    assert code == 0 and f"removed piece {piece_ids[TRAIN_PIECE]}" in out
    assert _run("remove", str(piece_ids[TRAIN_PIECE]))[0] == 1
    assert {p["id"] for p in json.loads(_run("pieces", "--json")[1])} == {piece_ids[VAL_PIECE], piece_ids[TEST_PIECE]}
