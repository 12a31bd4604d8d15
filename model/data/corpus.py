"""Which music21 corpus pieces we use, and their reduction to one grand staff (two staves).

Every piece, piano or not, is rebuilt from its source parts into two staves, so all layouts come from
the engraver (inherited page and system breaks are dropped) and every reduction is checked note for note.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

SPLITS_FILE = Path(__file__).with_name("splits.json")  # committed, composer-disjoint split
TEST_CHORALES = 50  # Bach chorales held out as a piece-disjoint identification set
CHORALE_SEED = "sheetid-test-chorales-v1"  # salt of the hash that picks the held-out chorales
# "train-extra": more training pieces (Palestrina's four-voice mass movements), built into a dataset folder
# of their own (`sheetid data build --split train-extra --out data/dataset-extra`) so that the evaluation
# library, every built piece of data/dataset, stays the same 434 pieces; `sheetid train --set
# extra_dataset=…` adds them to the training pairs.
EXTRA_SPLIT = "train-extra"
SPLITS = ("train", "validation", "test", "test-chorales", EXTRA_SPLIT)
TRAINING_PIECE_SPLITS = ("train", EXTRA_SPLIT)  # pieces that get training renditions, fonts and engravers
EXTRA_DIRS = ("palestrina",)  # four-voice vocal polyphony (.krn), reduced to two staves like the chorales
# Of them, the smallest salted hashes with four parts: a bounded build (all 300 about 38 minutes with 2 workers).
EXTRA_PIECES = 300
EXTRA_SEED = "sheetid-train-extra-v1"

# Solo piano: both staves as they are.
PIANO = [
    "chopin/mazurka06-2.krn",
    "cpebach/h186.mxl",
    "joplin/maple_leaf_rag.mxl",
    "mozart/k545/movement1_exposition.mxl",
    "schoenberg/opus19/movement2.mxl",
    "schoenberg/opus19/movement6.mxl",
    "schumann_clara/polonaise_op1n1.mxl",
    "schumann_clara/polonaise_op1n2.mxl",
    "schumann_clara/polonaise_op1n3.mxl",
    "schumann_clara/polonaise_op1n4.mxl",
    "verdi/laDonnaEMobile.mxl",
]
# Voice or instrument plus piano: keep the piano's two staves (the last two parts).
WITH_PIANO = [
    "beach/prayer_of_a_tired_child.musicxml",
    "handel/rinaldo/Lascia_chio_pianga.mxl",
    "liliuokalani/aloha_oe.mxl",
    "schubert/Lindenbaum.xml",
    "schumann_robert/dichterliebe_no2.xml",  # opus48no2.mxl is the same score: counted once
    "weber/concertino_clarinet.mxl",
    "schumann_clara/opus17/movement3.xml",
]
QUARTET_DIRS = ("beethoven", "haydn", "mozart", "schumann_robert/opus41no1")  # string quartets
COMPOSER_SPLIT = {  # composer → split; Bach is train except the held-out chorales
    "bach": "train", "beethoven": "train", "mozart": "train", "handel": "train",
    "schumann_clara": "validation", "schumann_robert": "validation", "weber": "validation",
    "verdi": "validation", "beach": "validation",
    "joplin": "test", "chopin": "test", "cpebach": "test", "schoenberg": "test", "schubert": "test",
    "liliuokalani": "test", "haydn": "test", "palestrina": EXTRA_SPLIT,
}  # fmt: skip


class ReductionError(RuntimeError):
    """A piece that cannot be reduced faithfully; the build logs it with this reason."""


@dataclass(frozen=True)
class PieceSpec:
    id: str  # corpus path without extension, e.g. "mozart/k545/movement1_exposition"
    path: str  # corpus path as music21 names it
    composer: str
    kind: str  # piano | with_piano | quartet | chorale | vocal


def piece_id(path: str) -> str:
    return path.rsplit(".", 1)[0] if "." in path.rsplit("/", 1)[-1] else path


def _corpus_paths() -> list[str]:
    from music21 import corpus

    return sorted(str(p).split("/corpus/", 1)[1] for p in corpus.getCorePaths())


def candidate_pieces() -> list[PieceSpec]:
    """Every piece the data engine tries, before the chorale part-count filter."""
    paths = _corpus_paths()
    specs = [PieceSpec(piece_id(p), p, p.split("/")[0], "piano") for p in PIANO]
    specs += [PieceSpec(piece_id(p), p, p.split("/")[0], "with_piano") for p in WITH_PIANO]
    taken = set(PIANO + WITH_PIANO)
    for p in paths:
        if p in taken or not p.endswith(".mxl"):
            continue  # the .krn copies of Beethoven op. 18 no. 1 duplicate the .mxl files
        if any(p.startswith(d + "/") for d in QUARTET_DIRS) and not p.startswith("mozart/k545"):
            specs.append(PieceSpec(piece_id(p), p, p.split("/")[0], "quartet"))
    for p in paths:
        if p.startswith("bach/") and p.endswith((".mxl", ".xml")):  # .krn copies duplicate .mxl
            specs.append(PieceSpec(piece_id(p), p, "bach", "chorale"))
    for p in paths:
        if p.split("/")[0] in EXTRA_DIRS and p.endswith(".krn"):
            specs.append(PieceSpec(piece_id(p), p, p.split("/")[0], "vocal"))
    return specs


def has_four_parts(path: str) -> bool:
    """A score of exactly four parts (chorales and the extra vocal pieces: two per staff)."""
    from music21 import corpus, stream

    score = corpus.parse(path)
    return isinstance(score, stream.Score) and len(score.parts) == 4


def is_training(split: str) -> bool:
    """Whether pieces of `split` are training material (renditions, fonts, engravers of training)."""
    return split in TRAINING_PIECE_SPLITS


def extra_pieces(specs: list[PieceSpec], limit: int = EXTRA_PIECES) -> list[str]:
    """The extra training pieces: four-part vocal scores, the `limit` smallest salted hashes among them."""
    vocal = sorted((s for s in specs if s.kind == "vocal"),
                   key=lambda s: hashlib.sha256(f"{EXTRA_SEED}:{s.id}".encode()).hexdigest())  # fmt: skip
    chosen: list[str] = []
    for spec in vocal:
        if len(chosen) == limit:
            break
        if has_four_parts(spec.path):
            chosen.append(spec.id)
    return chosen


def make_splits(chorales: list[str], others: list[PieceSpec]) -> dict[str, list[str]]:
    """Composer-disjoint split plus the seeded held-out chorales (the 50 smallest salted hashes)."""
    ranked = sorted(chorales, key=lambda c: hashlib.sha256(f"{CHORALE_SEED}:{c}".encode()).hexdigest())
    held = set(ranked[:TEST_CHORALES])
    splits: dict[str, list[str]] = {s: [] for s in SPLITS}
    for spec in others:
        splits[COMPOSER_SPLIT[spec.composer]].append(spec.id)
    for c in chorales:
        splits["test-chorales" if c in held else "train"].append(c)
    return {k: sorted(v) for k, v in splits.items()}


def load_splits(path: Path = SPLITS_FILE) -> dict[str, list[str]]:
    data = json.loads(path.read_text())
    return {k: list(data[k]) for k in SPLITS}


def split_of(piece: str, splits: dict[str, list[str]]) -> str:
    for name, ids in splits.items():
        if piece in ids:
            return name
    raise KeyError(f"{piece} is in no split")


def _note_heads(stream_obj: Any) -> int:
    """Count sounding note heads (chord members counted one by one)."""
    return sum(len(getattr(n, "pitches", ())) for n in stream_obj.recurse().notes)


def _snap(el: object) -> None:
    """Round an inexpressible duration (e.g. 8/17 of a beat) to the nearest 1/12 quarter."""
    q = Fraction(el.duration.quarterLength).limit_denominator(1000)  # type: ignore[attr-defined]
    if q.denominator not in (1, 2, 3, 4, 6, 8, 12, 16, 24, 32):
        el.duration.quarterLength = max(Fraction(1, 12), Fraction(round(q * 12), 12))  # type: ignore[attr-defined]


def reduce_to_grand_staff(score: object, kind: str) -> object:
    """Rebuild `score` as two staves; raises ReductionError when notes would be lost."""
    from music21 import clef, key, meter, stream

    parts = list(score.parts)  # type: ignore[attr-defined]
    if kind == "piano":
        groups = [[0], [1]]
    elif kind == "with_piano":
        groups = [[len(parts) - 2], [len(parts) - 1]]
    else:
        groups = [[0, 1], [2, 3]]
    four = kind in ("quartet", "chorale", "vocal")
    if len(parts) < max(i for g in groups for i in g) + 1 or (four and len(parts) != 4):
        raise ReductionError(f"{kind} needs {'4' if four else '2+'} parts, has {len(parts)}")
    out = stream.Score()
    expected = 0
    for gi, group in enumerate(groups):
        sources = [parts[i] for i in group]
        expected += sum(_note_heads(p) for p in sources)
        measures = [list(p.getElementsByClass(stream.Measure)) for p in sources]
        if len({len(m) for m in measures}) != 1:
            raise ReductionError(f"parts {group} have different measure counts {[len(m) for m in measures]}")
        staff = stream.PartStaff()
        for mi, srcs in enumerate(zip(*measures, strict=True)):
            m = stream.Measure(number=srcs[0].number)
            m.paddingLeft, m.paddingRight = srcs[0].paddingLeft, srcs[0].paddingRight
            if len(group) > 1 and mi == 0:
                m.insert(0, clef.TrebleClef() if gi == 0 else clef.BassClef())
            keep: tuple[type, ...] = (meter.TimeSignature, key.KeySignature)
            keep += (clef.Clef,) if len(group) == 1 else ()
            for el in srcs[0].recurse().getElementsByClass(keep):
                if el.activeSite is srcs[0] or len(group) == 1:
                    m.insert(el.getOffsetInHierarchy(srcs[0]), copy.deepcopy(el))
            m.leftBarline, m.rightBarline = copy.deepcopy(srcs[0].leftBarline), copy.deepcopy(srcs[0].rightBarline)
            voice_n = 0
            for src in srcs:
                for layer in list(src.voices) or [src]:
                    voice_n += 1
                    v = stream.Voice(id=str(voice_n))
                    for el in layer.notesAndRests:
                        new = copy.deepcopy(el)
                        _snap(new)
                        if new.isRest and new.duration.type == "complex":
                            # e.g. a 4.5-beat measure rest: MusicXML needs it as whole + eighth
                            offset = el.offset
                            for part_rest in new.splitAtDurations():
                                v.insert(offset, part_rest)
                                offset += part_rest.quarterLength
                        else:
                            v.insert(el.offset, new)
                    m.insert(0, v)
            staff.append(m)
        out.insert(0, staff)
    got = _note_heads(out)
    if got != expected:
        raise ReductionError(f"reduction changed the note count: {expected} → {got}")
    return out


def compute_splits() -> dict[str, list[str]]:
    """Scan the corpus (the chorales, then Palestrina's pieces for four parts: 4 minutes the first time
    here, 70 s once music21 has cached the parses) and return the split; `sheetid data splits` commits it."""
    specs = candidate_pieces()
    chorales = [s.id for s in specs if s.kind == "chorale" and has_four_parts(s.path)]
    extra = set(extra_pieces(specs))
    return make_splits(chorales, [s for s in specs if s.kind != "chorale" and (s.kind != "vocal" or s.id in extra)])


def pieces_in(splits: dict[str, list[str]]) -> list[PieceSpec]:
    """The candidate pieces that the split file names, in split-file order."""
    wanted = {p for ids in splits.values() for p in ids}
    return [s for s in candidate_pieces() if s.id in wanted]


def piece_spec(piece_id: str) -> PieceSpec:
    """The split file's piece with this id (StopIteration for one it does not name)."""
    return next(s for s in pieces_in(load_splits()) if s.id == piece_id)


def to_musicxml(score: Any) -> str:
    """MusicXML text of a reduced score. Durations MusicXML cannot express (odd tuplets inside voices)
    are quantised to a 1/12-quarter grid and the export retried; the note count is checked again."""
    from music21.musicxml.m21ToXml import GeneralObjectExporter
    from music21.musicxml.xmlObjects import MusicXMLExportException

    def export(s: Any) -> str:
        exporter = GeneralObjectExporter(s)
        # The source beams, ties and stems are copied note by note, so music21's own notation pass
        # (20× slower than the export itself) has nothing left to add.
        exporter.makeNotation = False
        return exporter.parse().decode()

    try:
        return export(score)
    except MusicXMLExportException:
        before = _note_heads(score)
        score = score.quantize((4, 3), processOffsets=True, processDurations=True, inPlace=False)  # type: ignore[attr-defined]
        if _note_heads(score) != before:
            raise ReductionError("quantising inexpressible durations changed the note count") from None
        return export(score)
