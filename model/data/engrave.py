"""Engrave a MusicXML score with verovio: page rasters, staff systems, note heads and onsets.

By default repeats are not expanded (`expandNever`): the score is played exactly as printed, top to
bottom, so a first and a second ending are both played once, in print order. This keeps the ground-truth
alignment monotone (audio time only moves forward through the page), which is what identification and DTW
assume. `expand_repeats=True` plays repeats and endings as a performer would (the robust query set): the
timemap then repeats notes under ids ending in "-rend<n>".
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

import numpy as np

from model.sheet import System

VEROVIO_OPTIONS = {  # A4 pages; at scale 40 a page is 840×1188 px and a staff space 7.2 px
    "scale": 40, "pageWidth": 2100, "pageHeight": 2970, "header": "none", "footer": "none",
    "breaks": "auto", "expandNever": True,
}  # fmt: skip
RASTER_SCALE = 2.0  # pages are rasterised at twice verovio's pixel size (about 203 dpi)
NOTEHEAD_HALF_WIDTH = 106  # SVG units from a note-head glyph's left edge to its centre
SVG = "{http://www.w3.org/2000/svg}"  # SVG XML namespace
_TRANSLATE = re.compile(r"translate\(\s*(-?[\d.]+)[ ,]+(-?[\d.]+)\s*\)")
_LINE = re.compile(r"M\s*(-?[\d.]+)\s+(-?[\d.]+)\s+L\s*(-?[\d.]+)\s+(-?[\d.]+)")
_TIE = re.compile(r"<tie\b[^>]*>")
_NOTE = re.compile(r"<note\b([^>]*?)(/>|>(.*?)</note>)", re.S)
STEP = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}  # pitch class of each note name
ALTER = {"s": 1, "f": -1, "ss": 2, "x": 2, "ff": -2, "n": 0, "su": 1, "fd": -1}  # MEI accidental → semitones


@dataclass
class Note:
    id: str
    pitch: int
    on: float  # onset in quarter notes from the start
    off: float  # release in quarter notes (ties followed to their end)


@dataclass
class Engraving:
    pages: list[np.ndarray]  # greyscale page rasters (uint8, paper 255)
    systems: list[System]  # all systems, in reading order
    notes: list[Note]  # sounding notes (tie continuations removed), sorted by onset
    head_system: dict[str, int] = field(default_factory=dict)  # note id → index into systems
    head_x: dict[str, float] = field(default_factory=dict)  # note id → note-head centre x (page px)
    head_y: dict[str, float] = field(default_factory=dict)  # note id → note-head y (page px)
    bars: list[float] = field(default_factory=list)  # quarter position of each (played) bar's start


def _classes(el: ET.Element) -> list[str]:
    return (el.get("class") or "").split()


def _parse_page(svg: str, page: int, n_systems: int) -> tuple[list[System], dict[str, tuple[int, float, float]]]:
    """Systems and note-head positions of one SVG page, in raster pixels."""
    root = ET.fromstring(svg)
    inner = next(el for el in root.iter(f"{SVG}svg") if el.get("viewBox"))
    view_w = float(inner.get("viewBox", "0 0 1 1").split()[2])
    px = float(root.get("width", "0").rstrip("px")) / view_w * RASTER_SCALE
    margin = next(el for el in root.iter(f"{SVG}g") if "page-margin" in _classes(el))
    mx, my = (float(v) for v in _TRANSLATE.search(margin.get("transform", "")).groups())  # type: ignore[union-attr]
    systems: list[System] = []
    heads: dict[str, tuple[int, float, float]] = {}
    for sys_el in (g for g in margin.iter(f"{SVG}g") if "system" in _classes(g)):
        staff_lines: list[list[tuple[float, float, float]]] = []
        for staff in (g for g in sys_el.iter(f"{SVG}g") if "staff" in _classes(g)):
            lines = []
            for path in staff.findall(f"{SVG}path"):
                m = _LINE.match(path.get("d", ""))
                if m and m.group(2) == m.group(4):
                    x1, y, x2 = float(m.group(1)), float(m.group(2)), float(m.group(3))
                    lines.append((min(x1, x2), y, max(x1, x2)))
            if len(lines) == 5:
                staff_lines.append(lines)
        if not staff_lines:
            continue
        ys = [ln[1] for st in staff_lines for ln in st]
        spaces = [b[1] - a[1] for st in staff_lines for a, b in zip(st[:-1], st[1:], strict=True)]
        systems.append(
            System(
                page=page,
                top=(min(ys) + my) * px,
                bottom=(max(ys) + my) * px,
                left=(min(ln[0] for st in staff_lines for ln in st) + mx) * px,
                right=(max(ln[2] for st in staff_lines for ln in st) + mx) * px,
                staff_space=float(np.median(spaces)) * px,
            )
        )
        for note in (g for g in sys_el.iter(f"{SVG}g") if "note" in _classes(g)):
            head = next((g for g in note.iter(f"{SVG}g") if "notehead" in _classes(g)), None)
            use = head.find(f"{SVG}use") if head is not None else None
            t = _TRANSLATE.search(use.get("transform", "")) if use is not None else None
            if t and note.get("id"):
                x, y = float(t.group(1)) + NOTEHEAD_HALF_WIDTH, float(t.group(2))
                heads[note.get("id", "")] = (n_systems + len(systems) - 1, (x + mx) * px, (y + my) * px)
    return systems, heads


def _rasterise(svg: str) -> np.ndarray:
    import pyvips

    image = pyvips.Image.svgload_buffer(svg.encode(), scale=RASTER_SCALE).flatten(background=255)
    grey = image.colourspace("b-w")[0]
    return np.ndarray(buffer=grey.write_to_memory(), dtype=np.uint8, shape=(grey.height, grey.width)).copy()


def mei_pitches(mei: str) -> dict[str, int]:
    """MIDI pitch of every MEI note from pname, oct and its written or implied accidental.

    (verovio's getMIDIValuesForElement does the same but costs O(notes) per call.)
    """
    out: dict[str, int] = {}
    for attrs, _, body in _NOTE.findall(mei):
        nid = re.search(r'xml:id="([^"]+)"', attrs)
        pname, octave = re.search(r'pname="([a-g])"', attrs), re.search(r'\boct="(-?\d+)"', attrs)
        if not (nid and pname and octave):
            continue
        accid = re.search(r'\baccid(?:\.ges)?="(\w+)"', attrs) or re.search(r'\baccid(?:\.ges)?="(\w+)"', body or "")
        alter = ALTER.get(accid.group(1), 0) if accid else 0
        out[nid.group(1)] = STEP[pname.group(1)] + 12 * (int(octave.group(1)) + 1) + alter
    return out


_REND = re.compile(r"^(.*?)(-rend\d+)?$")  # a repeat-expanded note id: the printed note's id + "-rend<n>"


def printed_id(note_id: str) -> str:
    """The printed note a performed note plays: a replayed note's id without its `-rend<n>` suffix."""
    return _REND.match(note_id).group(1)  # type: ignore[union-attr]


def _notes(pitches: dict[str, int], timemap: list[dict], tie_ends: dict[str, str]) -> list[Note]:
    """Sounding notes from verovio's timemap; a tie's continuation extends its first note instead.

    A repeated note ("<id>-rend2") takes its pitch and ties from the printed note <id>."""
    on: dict[str, float] = {}
    off: dict[str, float] = {}
    for entry in timemap:
        for nid in entry.get("on", []):
            on.setdefault(nid, float(entry["qstamp"]))
        for nid in entry.get("off", []):
            off[nid] = float(entry["qstamp"])
    continuations = set(tie_ends.values())
    notes = []
    for nid, q in on.items():
        printed, rend = _REND.match(nid).groups()  # type: ignore[union-attr]
        if printed in continuations:
            continue
        end, seen = printed, {printed}
        while end in tie_ends and tie_ends[end] not in seen:  # follow tie chains a→b→c
            end = tie_ends[end]
            seen.add(end)
        pitch = pitches.get(printed, -1)
        if 0 <= pitch < 128:
            notes.append(Note(nid, pitch, q, max(off.get(end + (rend or ""), q), q + 1e-3)))
    return sorted(notes, key=lambda n: (n.on, n.pitch))


MUSIC_FONTS = ("Leipzig", "Bravura", "Gootville", "Leland", "Petaluma")  # verovio's fonts; Leipzig is its default


def engrave(musicxml: str, font: str = "Leipzig", expand_repeats: bool = False, draw: bool = True) -> Engraving:
    """Lay out and rasterise a score; returns pages, systems, sounding notes and note-head positions.

    `font` is one of verovio's music fonts: training pieces are engraved in all of them, so the sheet
    pathway does not learn one font's note heads, clefs and beams. `expand_repeats` plays repeats (see
    the module notes); every replayed note gets its printed note's head position, so the pages and
    positions are those of the printed score. `draw=False` returns the sounding notes and bars only (no
    SVG, no rasters)."""
    import verovio

    verovio.enableLog(verovio.LOG_OFF)
    tk = verovio.toolkit()
    options = VEROVIO_OPTIONS | {"font": font}
    if expand_repeats:
        del options["expandNever"]  # verovio's default expands repeats
    tk.setOptions(options)
    if not tk.loadData(musicxml):
        raise ValueError("verovio could not load the score")
    svgs = [tk.renderToSVG(i + 1) for i in range(tk.getPageCount())] if draw else []
    timemap = tk.renderToTimemap({"includeRests": False, "includeMeasures": True})
    mei = tk.getMEI()
    tie_ends: dict[str, str] = {}
    for tag in _TIE.findall(mei):
        start, end = re.search(r'startid="#([^"]+)"', tag), re.search(r'endid="#([^"]+)"', tag)
        if start and end:
            tie_ends[start.group(1)] = end.group(1)
    result = Engraving(pages=[], systems=[], notes=_notes(mei_pitches(mei), timemap, tie_ends),
                       bars=sorted({float(e["qstamp"]) for e in timemap if "measureOn" in e}))
    for page, svg in enumerate(svgs):
        systems, heads = _parse_page(svg, page, len(result.systems))
        result.systems += systems
        for nid, (s, x, y) in heads.items():
            result.head_system[nid], result.head_x[nid], result.head_y[nid] = s, x, y
        result.pages.append(_rasterise(svg))
    for note in result.notes:  # a replayed note sits where its printed note is drawn
        base = printed_id(note.id)
        if base != note.id and base in result.head_x:
            result.head_system[note.id] = result.head_system[base]
            result.head_x[note.id], result.head_y[note.id] = result.head_x[base], result.head_y[base]
    return result
