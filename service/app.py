"""FastAPI application: routers, lifespan (migrations, model and index loaded once), web page at /.

Domain errors (indexer.errors) become HTTP status codes here and nowhere else.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.responses import Response
from starlette.types import ASGIApp

from indexer.errors import BadInput, NotFound, SheetidError, TimedOut, TooLarge, UnsupportedType
from indexer.settings import PLACEHOLDER_KEY, Settings, get_settings
from service.routes import health, identify, jobs, pieces

WEB_DIR = Path(__file__).with_name("web")  # the single-page web client
# Most specific first: the first class an error is an instance of gives its status.
STATUS_OF: list[tuple[type[SheetidError], int]] = [
    (TooLarge, 413), (UnsupportedType, 415), (BadInput, 422), (NotFound, 404), (TimedOut, 503),
]  # fmt: skip


def status_of(exc: SheetidError) -> int:
    return next((code for kind, code in STATUS_OF if isinstance(exc, kind)), 500)


class BodyLimit(BaseHTTPMiddleware):
    """Refuse bodies over the upload limit from Content-Length alone, before reading them (413)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        super().__init__(app)
        self.max_bytes = max_bytes

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            return JSONResponse({"detail": "request body too large"}, status_code=413)
        return await call_next(request)


def check_settings(settings: Settings) -> None:
    if settings.production and settings.api_key.get_secret_value() in ("", PLACEHOLDER_KEY):
        raise RuntimeError("production mode needs SHEETID_API_KEY set to a real secret")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    check_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from indexer.library import Library
        from model.threads import use_threads
        from service.jobs import JobRunner

        use_threads(settings.threads)
        app.state.library = Library(settings)  # runs migrations, loads model, checks FAISS vs database
        app.state.jobs = JobRunner(app.state.library, settings.embedded_worker)
        yield
        app.state.jobs.stop()
        app.state.library.close()

    app = FastAPI(title="sheetid", version="0.1.0", lifespan=lifespan,
                  description="Identify sheet music from recordings and follow them through the score.")  # fmt: skip
    app.state.library = None
    app.dependency_overrides[get_settings] = lambda: settings  # the routes see the settings given here
    app.add_middleware(BodyLimit, max_bytes=int(settings.max_upload_mb * 1024 * 1024) + 64 * 1024)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["*"],
                           allow_headers=["*"])  # fmt: skip
    for module in (health, pieces, identify, jobs):
        app.include_router(module.router)

    @app.exception_handler(SheetidError)
    async def domain_error(_: Request, exc: SheetidError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status_of(exc))

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return JSONResponse({"detail": f"{where}: {first.get('msg', 'invalid request')}"}, status_code=422)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(WEB_DIR / "index.html", media_type="text/html")

    return app
