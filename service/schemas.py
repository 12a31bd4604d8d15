"""Typed response models; the CLI's --json output uses the same shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class PieceOut(BaseModel):
    id: int
    title: str
    composer: str | None
    pages: int
    snippets: int
    status: str
    model_version: str | None = None
    created: datetime | None = None


class RankedPieceOut(BaseModel):
    id: int
    title: str
    composer: str | None
    votes: int
    score: float = Field(description="votes above chance for the piece's size, in Poisson standard deviations")
    consistency: float = Field(0.0, description="share of excerpts whose hits progress through this piece "
                               "along one tempo line")
    rank_score: float = Field(0.0, description="the ranking key when re-ranked: consistency plus the vote "
                              "z-score per square root of the votes cast")


class MatchRegion(BaseModel):
    page_start: int
    page_end: int
    box_start: tuple[float, float, float, float]
    box_end: tuple[float, float, float, float]


class IdentifyOut(BaseModel):
    no_match: bool
    confidence: float = Field(description="calibrated probability that the top piece is right")
    pieces: list[RankedPieceOut]
    match: MatchRegion | None = Field(None, description="where in the top piece the votes fall")
    excerpts: int
    seconds: float


class AlignedPointOut(BaseModel):
    time: float = Field(description="seconds into the recording")
    page: int
    system: int
    x: float
    box: tuple[float, float, float, float] = Field(description="x0, y0, x1, y1 on the page image")


class JumpOut(BaseModel):
    time: float = Field(description="seconds into the recording where the performance goes on elsewhere")
    source: AlignedPointOut = Field(description="the last position before the jump", alias="from")
    target: AlignedPointOut = Field(description="the first position after the jump", alias="to")

    model_config = {"populate_by_name": True, "serialize_by_alias": True}


class AlignOut(BaseModel):
    piece_id: int
    subsequence: bool = Field(description="the path starts or ends away from the score's first or last bar")
    page_size: dict[int, tuple[int, int]] = Field(description="page number → (width, height) of the page image")
    points: list[AlignedPointOut]
    jumps: list[JumpOut] = Field([], description="where the performance leaves the printed order (a repeat, "
                                 "an ending, a da capo, a skip), in time order")  # fmt: skip


class JobOut(BaseModel):
    id: str
    status: Literal["queued", "running", "done", "failed"]
    stage: str
    progress: float
    piece_id: int | None = None
    duplicate: bool = False
    error: str | None = None
    pages_without_music: list[int] = Field(default_factory=list,
                                           description="1-based pages skipped because no staff system was found")


class ErrorOut(BaseModel):
    detail: str


class Health(BaseModel):
    status: str
    model_version: str | None = None
    pieces: int | None = None
    vectors: int | None = None
