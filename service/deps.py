"""Annotated dependencies: settings, the loaded library, the job runner and API-key checks."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader

from indexer.library import Library
from indexer.settings import Settings, get_settings
from service.jobs import JobRunner

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)


def get_library(request: Request) -> Library:
    library = getattr(request.app.state, "library", None)
    if library is None:
        raise HTTPException(503, "the model and index are still loading")
    return library


def get_jobs(request: Request) -> JobRunner:
    return request.app.state.jobs


SettingsDep = Annotated[Settings, Depends(get_settings)]
LibraryDep = Annotated[Library, Depends(get_library)]
JobsDep = Annotated[JobRunner, Depends(get_jobs)]


def _check(key: str | None, settings: Settings) -> None:
    expected = settings.api_key.get_secret_value().encode()
    if key is None or not secrets.compare_digest(key.encode(), expected):
        raise HTTPException(401, "missing or wrong API key (header X-API-Key)", headers={"WWW-Authenticate": "ApiKey"})


def require_key(settings: SettingsDep, key: Annotated[str | None, Security(api_key_header)]) -> None:
    _check(key, settings)


def read_access(settings: SettingsDep, key: Annotated[str | None, Security(api_key_header)]) -> None:
    if settings.protect_reads:
        _check(key, settings)


WriteAccess = Depends(require_key)
ReadAccess = Depends(read_access)
