"""/identify: which piece of the library is this recording?"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, File, UploadFile
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from indexer.errors import TimedOut
from indexer.store import Snippet
from service.deps import LibraryDep, ReadAccess, SettingsDep
from service.identify import Identification, identify
from service.schemas import ErrorOut, IdentifyOut, MatchRegion, RankedPieceOut
from service.uploads import decode_audio, read_capped

router = APIRouter(tags=["identify"])
ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut} for code in (401, 413, 415, 422, 503)}


def identify_out(result: Identification, library: LibraryDep) -> IdentifyOut:
    ids = [p.id for p in result.pieces]
    meta = library.titles(ids)
    with library.Session() as s:
        match = None
        if result.pieces and result.matched_strip_x:
            lo, hi = result.matched_strip_x
            ends = []
            for x in (lo, hi):
                row = s.scalars(select(Snippet).where(Snippet.piece_id == ids[0])
                                .order_by((Snippet.strip_x - x) * (Snippet.strip_x - x)).limit(1)).first()  # fmt: skip
                ends.append(row)
            if all(ends):
                a, b = ends
                match = MatchRegion(page_start=a.page, page_end=b.page, box_start=(a.x0, a.y0, a.x1, a.y1),  # type: ignore[union-attr]
                                    box_end=(b.x0, b.y0, b.x1, b.y1))  # type: ignore[union-attr]  # fmt: skip
    pieces = [RankedPieceOut(id=p.id, title=meta[p.id][0], composer=meta[p.id][1], votes=p.votes,
                             score=round(p.score, 4), consistency=round(p.consistency, 4),
                             rank_score=round(p.rank_score, 4))
              for p in result.pieces if p.id in meta]  # fmt: skip
    confidence = round(float(np.clip(result.confidence, 0, 1)), 4)
    return IdentifyOut(no_match=result.no_match, confidence=confidence, pieces=pieces, match=match,
                       excerpts=result.excerpts, seconds=round(result.seconds, 2))  # fmt: skip


@router.post("/identify", response_model=IdentifyOut, dependencies=[ReadAccess], responses=ERRORS)
async def identify_recording(
    library: LibraryDep,
    settings: SettingsDep,
    file: Annotated[UploadFile, File(description="recording: wav, flac, ogg or mp3")],
) -> IdentifyOut:
    """Rank the library's pieces for a recording (5 s excerpt up to a whole performance)."""
    wave = await run_in_threadpool(decode_audio, await read_capped(file, settings), settings)
    try:
        result = await asyncio.wait_for(run_in_threadpool(identify, library, wave), settings.request_timeout_s)
    except TimeoutError:
        raise TimedOut("identification took too long") from None
    return identify_out(result, library)
