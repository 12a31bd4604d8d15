"""/jobs: progress and outcome of queued ingests."""

from __future__ import annotations

from fastapi import APIRouter

from indexer.errors import NotFound
from service.deps import JobsDep, ReadAccess
from service.schemas import ErrorOut, JobOut

router = APIRouter(prefix="/jobs", tags=["jobs"])


@router.get("/{job_id}", response_model=JobOut, dependencies=[ReadAccess], responses={404: {"model": ErrorOut}})
def get_job(job_id: str, jobs: JobsDep) -> JobOut:
    job = jobs.get(job_id)
    if job is None:
        raise NotFound("no such job")
    return JobOut(**job.__dict__)
