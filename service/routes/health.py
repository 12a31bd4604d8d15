"""/healthz (the process is alive) and /readyz (model and index loaded)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from service.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}})
def readyz(request: Request) -> Health | JSONResponse:
    library = getattr(request.app.state, "library", None)
    if library is None:
        return JSONResponse(Health(status="loading").model_dump(), status_code=503)
    return Health(status="ready", model_version=library.model_version, pieces=len(library.counts()),
                  vectors=library.index.ntotal)  # fmt: skip
