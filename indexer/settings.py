"""The one settings object and the one `get_settings`: paths, limits and keys, from SHEETID_* or .env.

It lives in indexer/ (not service/) because the CLI, the library and the server need the same data
directory and limits, and data flows one way: service → indexer → model. The app uses `get_settings` as
its dependency (tests override it); nothing else constructs settings from the environment.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

# how the query's tempo readings vote (Settings.query_readings, service.identify.query_excerpts)
QueryReadings = Literal["separate", "mean", "mean+tempi"]
PLACEHOLDER_KEY = "change-me"  # the development key; production mode refuses to start with it


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SHEETID_", env_file=".env", extra="ignore")

    # storage
    data_dir: Path = Path("data")  # database, FAISS index, manifest and page images all live here
    database_url: str | None = None  # default: sqlite:///<data_dir>/library.sqlite3 (PostgreSQL works too)
    index_factory: str = "Flat"  # FAISS factory string: "Flat" (exact), "HNSW32", "IVF4096,Flat", ...
    vector_store: str = "faiss"  # "faiss", "milvus://host:19530" or a Milvus Lite file (indexer/vector_store.py)
    milvus_index: str = "HNSW"  # Milvus index type: HNSW, IVF_FLAT or FLAT
    # Milvus searches: "Strong" sees every acknowledged write (a piece is identifiable the moment its job is
    # done) and waits for the server's time tick (about 200 ms a search); "Bounded" answers at once from data
    # at most Milvus's graceful time (5 s by default) old. README, "Past one machine".
    milvus_consistency: Literal["Strong", "Bounded", "Session", "Eventually"] = "Strong"
    weights: Path | None = None  # model checkpoint; default: the shipped weights
    calibration: Path | None = None  # confidence calibration; default: calibration.json beside the weights
    device: str = "auto"  # "auto" (GPU when present), "cpu" or "cuda"
    threads: int = 2  # torch CPU threads

    # service
    production: bool = False  # refuse to start with the placeholder API key
    api_key: SecretStr = SecretStr(PLACEHOLDER_KEY)  # required for POST/DELETE (header X-API-Key)
    protect_reads: bool = False  # also require the key for GET endpoints
    cors_origins: list[str] = Field(default_factory=list)  # browser origins allowed to call the API (JSON list)
    embedded_worker: bool = True  # `serve` also runs ingest jobs in a thread; false for API-only replicas
    job_lease_s: float = 60.0  # a running job whose worker stops renewing this long is retried

    # limits (bad input gets a 4xx, never a crash)
    max_upload_mb: float = 50.0  # request body size for uploads → 413
    max_pdf_pages: int = 60  # → 422
    max_page_pixels: int = 40_000_000  # rasterised page area at the indexing DPI → 422
    max_page_inches: float = 40.0  # largest page side in the PDF's own units → 422
    max_audio_seconds: float = 1200.0  # longer recordings → 422
    min_audio_seconds: float = 2.0  # shorter (or silent) recordings → 422
    max_audio_channels: int = 2  # mono or stereo recordings; downmix surround material first → 422
    max_sample_rate: int = 96_000  # Hz; higher rates are refused rather than resampled → 422
    request_timeout_s: float = 120.0  # identify / align calls running longer → 503

    # retrieval
    pdf_dpi: int = 150  # rasterisation DPI for uploaded PDFs
    snippet_hop: int = 16  # px between indexed snippets at model scale (must divide the model's stride, 16)
    # Each indexed vector is the normalised mean of the snippet as engraved and read at each of these
    # widths (model.sheet.at_width; () = as engraved only). Part of the library's vector version: a change
    # marks the indexed pieces stale until `sheetid reindex`.
    snippet_widths: tuple[Annotated[float, Field(gt=0.5, lt=2.0)], ...] = ()
    excerpt_hop: int = 8  # spectrogram frames between query excerpts (0.4 s; must divide the stride)
    top_k: int = 25  # neighbours per excerpt that vote (paper §5)
    # The query is also asked as if played this many times as fast (model.audio.at_tempo), and every
    # version's excerpts vote. At 0.7 an audio excerpt (2.4 s) holds about the music of a sheet snippet
    # (128 px, about 1.7 s at 120 bpm); chosen on validation (README, Identification, "Query tempi").
    # () asks the recording as played only.
    query_tempi: tuple[Annotated[float, Field(gt=0.2, lt=5.0)], ...] = (0.7,)
    # spectrogram frames between a tempo version's excerpts, in its own frames (16 halves its cost: on
    # validation 93 of 168 ranked first against 97 at 8, README, "Query tempi")
    query_tempo_hop: int = 8
    # how the tempo readings vote: "separate" (each reading's excerpts vote), "mean" (each excerpt as played
    # votes with the normalised mean of its readings: the window of each tempo reading nearest its centre),
    # "mean+tempi" (that mean in place of the played reading, the tempo readings voting beside it)
    query_readings: QueryReadings = "separate"
    rerank: bool = True  # re-rank the vote shortlist by votes and temporal consistency (service/identify.py)
    # weight of the vote z-score per √(votes cast) beside consistency in that re-ranking (0: consistency alone)
    rerank_vote_weight: float = Field(default=1.0, ge=0.0)
    # one threshold for every library size; default: the calibration's, one per size (weights file)
    no_match_threshold: float | None = None

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'library.sqlite3'}"

    @property
    def calibration_path(self) -> Path:
        from model.checkpoint import DEFAULT_WEIGHTS

        return self.calibration or (self.weights or DEFAULT_WEIGHTS).with_name("calibration.json")

    @property
    def pages_dir(self) -> Path:
        return self.data_dir / "pages"

    @property
    def index_path(self) -> Path:
        return self.data_dir / "snippets.faiss"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
