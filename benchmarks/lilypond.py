"""System detection on PDFs engraved by LilyPond, against the staves LilyPond drew.

Each piece's two-staff reduction (the MusicXML the data engine engraves) goes through `musicxml2ly`,
then LilyPond lays it out twice with the same settings, once to PDF and once to SVG. In the SVG every
staff line is a horizontal `<line>` inside a `translate(x, y)` group; five of them make a staff, and
every two consecutive staves one system (each reduction has exactly two staves).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from benchmarks.systems import MIN_IOU, evaluate_engraver
from model.data.musescore import numbered_svg_pages

LILYPOND, MUSICXML2LY = "lilypond", "musicxml2ly"  # Debian package lilypond
STAFF_LINE = re.compile(
    r'<g transform="translate\(([-\d.]+), ([-\d.]+)\)">\s*<line [^>]*x1="([-\d.]+)" y1="0" x2="([-\d.]+)" y2="0"/>'
)
VIEW_BOX = re.compile(r'viewBox="[-\d.]+ [-\d.]+ ([\d.]+) [\d.]+"')
MIN_LINE_SHARE = 0.2  # staff lines run over at least this share of the page width (ledger lines do not)
Box = tuple[float, float, float, float]


def lilypond_systems(svg: str) -> tuple[list[Box], float]:
    """(system boxes in SVG units, page width in SVG units) from a LilyPond SVG page."""
    width = float(VIEW_BOX.search(svg).group(1))  # type: ignore[union-attr]
    found = [tuple(map(float, m)) for m in STAFF_LINE.findall(svg)]
    lines = sorted((ty, tx + x1, tx + x2) for tx, ty, x1, x2 in found if x2 - x1 >= MIN_LINE_SHARE * width)
    staves = [lines[i : i + 5] for i in range(0, len(lines) - len(lines) % 5, 5)]
    systems = []
    for upper, lower in zip(staves[::2], staves[1::2], strict=False):
        # clipped to the page: where LilyPond finds no line break, a system runs on past the right edge,
        # and only what is printed on the page can be detected
        right = min(width, max(upper[0][2], lower[0][2]))
        systems.append((max(0.0, min(upper[0][1], lower[0][1])), upper[0][0], right, lower[-1][0]))
    return systems, width


def lilypond_engrave(xml: str, tmp: Path, svg: bool = True) -> tuple[bytes, list[str]]:
    """LilyPond's PDF of a MusicXML score and (with `svg`) its SVG pages, in page order."""
    if shutil.which(LILYPOND) is None or shutil.which(MUSICXML2LY) is None:
        raise RuntimeError("LilyPond is needed: apt-get install lilypond")
    (tmp / "score.musicxml").write_text(xml)
    subprocess.run([MUSICXML2LY, "-o", "score.ly", "score.musicxml"], cwd=tmp, check=True, capture_output=True,
                   timeout=300)  # fmt: skip
    for args in (["--pdf"], ["-dbackend=svg"]) if svg else (["--pdf"],):
        subprocess.run([LILYPOND, *args, "-o", "score", "score.ly"], cwd=tmp, check=True, capture_output=True,
                       timeout=300)  # fmt: skip
    pages = numbered_svg_pages(tmp)
    if svg and not pages:
        pages = [tmp / "score.svg"]
    return (tmp / "score.pdf").read_bytes(), [p.read_text() for p in pages]


def evaluate_lilypond(split: str = "test", dpi: int = 150, min_iou: float = MIN_IOU,
                      log: Callable[[str], None] = print) -> dict:  # fmt: skip
    """Precision and recall (IoU ≥ min_iou) of the page front-end on LilyPond PDFs of a split's pieces."""
    return evaluate_engraver("LilyPond", lilypond_engrave, lilypond_systems, split, dpi, min_iou, log)
