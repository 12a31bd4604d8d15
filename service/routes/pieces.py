"""/pieces: grow, list, inspect and delete the library; page images; alignment of a recording."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Path, UploadFile
from fastapi.responses import FileResponse
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from indexer.errors import NotFound, TimedOut
from indexer.pdf import inspect_pdf
from indexer.store import Page, Piece
from service.align import AlignedPoint
from service.deps import JobsDep, LibraryDep, ReadAccess, SettingsDep, WriteAccess
from service.jumps import align_with_jumps
from service.schemas import AlignedPointOut, AlignOut, ErrorOut, JobOut, JumpOut, PieceOut
from service.uploads import decode_audio, read_capped

router = APIRouter(prefix="/pieces", tags=["pieces"])
ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut} for code in (401, 404, 413, 415, 422, 503)}
# Ids are SQLite integers: larger numbers in a URL are a 422, not an overflow deep in the database driver.
PieceId = Annotated[int, Path(ge=1, le=2**63 - 1, description="piece id")]
PageNumber = Annotated[int, Path(ge=1, le=100_000, description="1-based page number")]


def piece_out(piece: Piece, snippets: int) -> PieceOut:
    return PieceOut(id=piece.id, title=piece.title, composer=piece.composer, pages=piece.pages, snippets=snippets,
                    status=piece.status.value, model_version=piece.model_version, created=piece.created)  # fmt: skip


@router.post("", status_code=202, response_model=JobOut, dependencies=[WriteAccess], responses=ERRORS)
async def add_piece(
    library: LibraryDep,
    jobs: JobsDep,
    settings: SettingsDep,
    file: Annotated[UploadFile, File(description="score PDF")],
    title: Annotated[str | None, Form(max_length=300)] = None,
    composer: Annotated[str | None, Form(max_length=200)] = None,
) -> JobOut:
    """Queue a score PDF for indexing; poll GET /jobs/{id}. The same PDF twice gives the same piece."""
    data = await read_capped(file, settings)
    # cheap checks now, so hostile files are refused with a 4xx instead of a failed job
    await run_in_threadpool(inspect_pdf, data, settings.max_pdf_pages, settings.max_page_inches,
                            settings.pdf_dpi, settings.max_page_pixels)  # fmt: skip
    job = jobs.submit_pdf(data, title or None, composer or None, file.filename)
    return JobOut(**job.__dict__)


@router.get("", response_model=list[PieceOut], dependencies=[ReadAccess])
def list_pieces(library: LibraryDep) -> list[PieceOut]:
    counts = library.counts()
    with library.Session() as s:
        return [piece_out(p, counts.get(p.id, 0)) for p in s.scalars(select(Piece).order_by(Piece.id))]


@router.get("/{piece_id}", response_model=PieceOut, dependencies=[ReadAccess], responses=ERRORS)
def get_piece(piece_id: PieceId, library: LibraryDep) -> PieceOut:
    with library.Session() as s:
        piece = s.get(Piece, piece_id)
        if piece is None:
            raise NotFound("no such piece")
        return piece_out(piece, library.counts().get(piece_id, 0))


@router.delete("/{piece_id}", status_code=204, dependencies=[WriteAccess], responses=ERRORS)
def delete_piece(piece_id: PieceId, library: LibraryDep) -> None:
    if not library.remove(piece_id):
        raise NotFound("no such piece")


@router.get("/{piece_id}/pages/{number}", response_class=FileResponse, dependencies=[ReadAccess],
            responses={200: {"content": {"image/png": {}}}, **ERRORS})  # fmt: skip
def page_image(piece_id: PieceId, number: PageNumber, library: LibraryDep, settings: SettingsDep) -> FileResponse:
    with library.Session() as s:
        page = s.scalars(select(Page).where(Page.piece_id == piece_id, Page.number == number)).first()
    if page is None:
        raise NotFound("no such page")
    path = (settings.data_dir / page.image).resolve()
    if settings.data_dir.resolve() not in path.parents or not path.exists():
        raise NotFound("page image missing")
    return FileResponse(path, media_type="image/png")


@router.post("/{piece_id}/align", response_model=AlignOut, dependencies=[ReadAccess], responses=ERRORS)
async def align_recording(
    piece_id: PieceId,
    library: LibraryDep,
    settings: SettingsDep,
    file: Annotated[UploadFile, File(description="recording: wav, flac, ogg or mp3")],
) -> AlignOut:
    """Follow a recording through the score: audio time → page, system and box on the page. The path
    may jump where the performance does (repeats, endings, da capo); `jumps` lists where."""
    with library.Session() as s:
        piece = s.get(Piece, piece_id)
        if piece is None or piece.status.value != "indexed":
            raise NotFound("no such indexed piece")
        sizes = {p.number: (p.width, p.height) for p in piece.page_rows}
    wave = await run_in_threadpool(decode_audio, await read_capped(file, settings), settings)
    try:
        result = await asyncio.wait_for(run_in_threadpool(align_with_jumps, library, piece_id, wave),
                                        settings.request_timeout_s)
    except TimeoutError:
        raise TimedOut("alignment took too long") from None
    jumps = [JumpOut.model_validate({"time": j.time, "from": point_out(j.source), "to": point_out(j.target)})
             for j in result.jumps]  # fmt: skip
    return AlignOut(piece_id=piece_id, subsequence=result.subsequence, page_size=sizes,
                    points=[point_out(p) for p in result.points], jumps=jumps)  # fmt: skip


def point_out(p: AlignedPoint) -> AlignedPointOut:
    return AlignedPointOut(time=p.time, page=p.page, system=p.system, x=p.x, box=p.box)
