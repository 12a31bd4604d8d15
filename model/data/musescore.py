"""Engrave a reduced score with MuseScore 3: the training data's second engraver (issue 12).

verovio alone would teach the sheet pathway one engraver's spacing, beams and glyphs. MuseScore lays out
the same MusicXML its own way; its exports give everything a dataset record needs:
- the PDF (what users bring), rasterised with poppler;
- the SVG pages, whose `StaffLines` polylines give the true staves (every reduction has exactly two
  staves, so two consecutive staves form one system);
- the segment positions (`.spos`): the x of every chord/rest time slice, its system and its time in ms.
Segment times are matched to verovio's onsets (quarter positions), so the audio, which is rendered from
verovio's notes, keeps its ground truth. MuseScore plays repeats and tempo marks, verovio's data build
does not (`expandNever`, the tempo set per rendition): both are removed from the copy MuseScore engraves,
so its clock runs at its default 120 bpm straight through the score.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from model.data.engrave import Engraving, Note
from model.sheet import System

MSCORE = "mscore3"  # Debian package musescore3 (headless with QT_QPA_PLATFORM=offscreen)
MS_PER_QUARTER = 500.0  # MuseScore's default tempo, 120 bpm, once the score's tempo marks are removed
SPOS_PER_SVG = 10.0  # .spos coordinates are ten times the SVG's (both at the page's 360 dpi)
# A note head's centre lies this many staff spaces right of its segment's x (measured on MuseScore's SVG
# note glyphs: 0.66 for every segment of a chorale page, the 10th to 90th percentile within 0.01).
HEAD_OFFSET_SPACES = 0.66
Q_TOLERANCE = 0.01  # quarters; MuseScore's times are whole ms (a triplet eighth is 167 ms, not 166.67)
MIN_MATCHED = 0.9  # share of notes that must find their segment, or the engraving is refused
STAFF_LINES = re.compile(r'class="StaffLines"[^>]*points="([\d.]+),([\d.]+) ([\d.]+),([\d.]+)"')
SVG_WIDTH = re.compile(r'<svg width="([\d.]+)px"')
_ELEMENT = re.compile(r'<element id="(\d+)" x="(-?[\d.]+)" y="(-?[\d.]+)" sx="[\d.-]+" sy="[\d.-]+" page="(\d+)"')
_EVENT = re.compile(r'<event elid="(\d+)" position="(\d+)"')
# What makes MuseScore's playback differ from verovio's straight-through clock.
_UNPLAYED = [
    re.compile(r"<direction\b[^>]*>(?:(?!</direction>).)*?<metronome\b.*?</direction>", re.S),
    re.compile(r"<(?:repeat|ending)\b[^>]*/>"),
    re.compile(r'\s(?:tempo|dacapo|dalsegno|tocoda|fine|segno|coda)="[^"]*"'),
]
Box = tuple[float, float, float, float]  # left, top, right, bottom in SVG units


def staff_systems(svg: str) -> tuple[list[Box], float]:
    """(system boxes in SVG units, page width in SVG units) of one MuseScore SVG page."""
    lines = sorted((float(y0), float(x0), float(x1)) for x0, y0, x1, _ in STAFF_LINES.findall(svg))
    width = float(SVG_WIDTH.search(svg).group(1))  # type: ignore[union-attr]
    staves = [lines[i : i + 5] for i in range(0, len(lines) - len(lines) % 5, 5)]
    systems = []
    for upper, lower in zip(staves[::2], staves[1::2], strict=False):
        systems.append((min(upper[0][1], lower[0][1]), upper[0][0], max(upper[0][2], lower[0][2]), lower[-1][0]))
    return systems, width


def numbered_svg_pages(folder: Path) -> list[Path]:
    """An engraver's SVG pages `score-1.svg`, `score-2.svg`, … in page order, not name order (MuseScore and
    LilyPond both number their pages so)."""
    return sorted(folder.glob("score-*.svg"), key=lambda p: int(p.stem.rsplit("-", 1)[1]))


def export(xml: str, tmp: Path, formats: tuple[str, ...] = ("pdf", "svg")) -> dict[str, bytes | list[str]]:
    """MuseScore 3's exports of a MusicXML score: "pdf" → bytes, "svg" → one text per page, "spos" → a
    one-element list with the segment-positions text."""
    if shutil.which(MSCORE) is None:
        raise RuntimeError("MuseScore 3 is needed: apt-get install musescore3")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    (tmp / "score.musicxml").write_text(xml)
    # One job file: MuseScore reads and lays out the score once for all exports.
    job = [{"in": str(tmp / "score.musicxml"), "out": [str(tmp / f"score.{fmt}") for fmt in formats]}]
    (tmp / "job.json").write_text(json.dumps(job))
    subprocess.run([MSCORE, "-j", str(tmp / "job.json")], env=env, check=True, capture_output=True, timeout=300)
    out: dict[str, bytes | list[str]] = {}
    if "pdf" in formats:
        out["pdf"] = (tmp / "score.pdf").read_bytes()
    if "svg" in formats:
        out["svg"] = [p.read_text() for p in numbered_svg_pages(tmp)]
    if "spos" in formats:
        out["spos"] = [(tmp / "score.spos").read_text()]
    return out


def played_straight(xml: str) -> str:
    """The score without tempo marks, repeats and jumps: MuseScore then plays it as printed at 120 bpm."""
    for pattern in _UNPLAYED:
        xml = pattern.sub("", xml)
    return xml


def _segments(spos: str) -> list[tuple[float, int, float, float]]:
    """(quarter position, page, x, y) of every segment, in SVG units. Raises ValueError when MuseScore
    plays a segment twice: a repeat or jump it still reads would shift every later time."""
    where = {int(i): (int(page), float(x) / SPOS_PER_SVG, float(y) / SPOS_PER_SVG)
             for i, x, y, page in _ELEMENT.findall(spos)}  # fmt: skip
    when: dict[int, float] = {}
    for elid, position in _EVENT.findall(spos):
        if int(elid) in when:
            raise ValueError("MuseScore plays part of the score twice")
        when[int(elid)] = int(position) / MS_PER_QUARTER
    return sorted((q, *where[i]) for i, q in when.items() if i in where)


def _nearest(times: np.ndarray, onsets: np.ndarray) -> np.ndarray:
    """Index of the sorted `times` entry nearest each onset (the first of equals), −1 where none lies within
    Q_TOLERANCE quarters."""
    if len(times) == 0:
        return np.full(len(onsets), -1)
    right = np.minimum(np.searchsorted(times, onsets), len(times) - 1)
    left = np.searchsorted(times, times[np.maximum(right - 1, 0)])  # the first of a run of equal times
    best = np.where(np.abs(times[left] - onsets) <= np.abs(times[right] - onsets), left, right)
    return np.where(np.abs(times[best] - onsets) <= Q_TOLERANCE, best, -1)


def _rasterise(pdf: bytes, dpi: float) -> list[np.ndarray]:
    from pdf2image import convert_from_bytes

    return [np.asarray(p.convert("L"), dtype=np.uint8) for p in convert_from_bytes(pdf, dpi=round(dpi))]


def musescore_engraving(xml: str, notes: list[Note], dpi: float) -> tuple[Engraving, bytes]:
    """MuseScore's layout of `xml` as an Engraving of the given sounding notes (verovio's), and its PDF.

    Each note's head position is its onset's segment on MuseScore's pages, rasterised at `dpi`. Raises
    ValueError when fewer than MIN_MATCHED of the onsets have a segment (a rhythm MuseScore reads
    otherwise, or a jump left in the score)."""
    with tempfile.TemporaryDirectory() as tmp:
        files = export(played_straight(xml), Path(tmp), ("pdf", "svg", "spos"))
    pdf, svgs, spos = files["pdf"], files["svg"], files["spos"][0]
    assert isinstance(pdf, bytes) and isinstance(spos, str)
    pages = _rasterise(pdf, dpi)
    eng = Engraving(pages=pages, systems=[], notes=notes)
    tops: list[tuple[int, float]] = []  # (page, top in SVG units) of every system, in reading order
    page_px: list[float] = []  # raster pixels per SVG unit, per page
    for page, svg in enumerate(svgs):
        boxes, width = staff_systems(str(svg))
        px = pages[page].shape[1] / width
        page_px.append(px)
        lines = sorted(float(y0) for _, y0, _, _ in STAFF_LINES.findall(str(svg)))
        space = float(np.median(np.diff(lines[:5]))) * px if len(lines) >= 5 else 0.0
        for left, top, right, bottom in boxes:
            eng.systems.append(System(page, top * px, bottom * px, left * px, right * px, space))
            tops.append((page, top))
    if not eng.systems:
        raise ValueError("MuseScore drew no staff systems")
    segments = _segments(spos)
    nearest = _nearest(np.array([q for q, *_ in segments]), np.array([note.on for note in notes]))
    matched = 0
    for note, k in zip(notes, nearest, strict=True):
        if k < 0:
            continue
        _, page, x, y = segments[k]
        candidates = [i for i, (p, _) in enumerate(tops) if p == page]
        if not candidates:
            continue
        s = min(candidates, key=lambda i: abs(tops[i][1] - y))
        system = eng.systems[s]
        eng.head_system[note.id] = s
        eng.head_x[note.id] = x * page_px[page] + HEAD_OFFSET_SPACES * system.staff_space
        eng.head_y[note.id] = system.centre
        matched += 1
    if matched < MIN_MATCHED * len(notes):  # grace notes have no segment of their own; more is a misreading
        raise ValueError(f"MuseScore's segments matched {matched} of {len(notes)} notes")
    return eng, pdf
