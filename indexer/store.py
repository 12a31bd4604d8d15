"""Library metadata in SQL (SQLite by default, PostgreSQL works): pieces, pages, systems, snippets.

Snippet vectors are stored here as well as in FAISS: the database is the source of truth and the FAISS
index can always be rebuilt from it.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from sqlalchemy import (
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, sessionmaker

from model.embed import EMBED_DIM

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"  # Alembic scripts
SQLITE_BUSY_MS = 30_000  # writers wait this long for a lock instead of failing with "database is locked"
PG_LOCK_TIMEOUT_MS = 60_000  # PostgreSQL: longest wait for a row or table lock


class Status(enum.StrEnum):
    pending = "pending"  # row written, vectors not yet durable: invisible to queries
    indexed = "indexed"  # vectors durable in the database and FAISS
    stale = "stale"  # embedded by another model version: invisible until `sheetid reindex`


class Base(DeclarativeBase):
    pass


class Piece(Base):
    __tablename__ = "pieces"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(300))
    composer: Mapped[str | None] = mapped_column(String(200), nullable=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    pages: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[Status] = mapped_column(Enum(Status, name="piece_status"), default=Status.pending, index=True)
    model_version: Mapped[str | None] = mapped_column(String(40), nullable=True)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=lambda: datetime.now(UTC))
    page_rows: Mapped[list[Page]] = relationship(back_populates="piece", cascade="all, delete-orphan",
                                                 order_by="Page.number")  # fmt: skip
    system_rows: Mapped[list[SystemRow]] = relationship(cascade="all, delete-orphan", order_by="SystemRow.index")
    snippet_rows: Mapped[list[Snippet]] = relationship(cascade="all, delete-orphan", order_by="Snippet.strip_x")


class Page(Base):
    __tablename__ = "pages"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    piece_id: Mapped[int] = mapped_column(ForeignKey("pieces.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)  # 1-based
    width: Mapped[int] = mapped_column(Integer)  # px at the indexing DPI
    height: Mapped[int] = mapped_column(Integer)
    image: Mapped[str] = mapped_column(String(500))  # PNG path relative to the data directory
    piece: Mapped[Piece] = relationship(back_populates="page_rows")


class SystemRow(Base):
    __tablename__ = "systems"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    piece_id: Mapped[int] = mapped_column(ForeignKey("pieces.id", ondelete="CASCADE"), index=True)
    index: Mapped[int] = mapped_column(Integer)  # reading order within the piece
    page: Mapped[int] = mapped_column(Integer)  # 1-based page number
    top: Mapped[float] = mapped_column(Float)
    bottom: Mapped[float] = mapped_column(Float)
    left: Mapped[float] = mapped_column(Float)
    right: Mapped[float] = mapped_column(Float)
    staff_space: Mapped[float] = mapped_column(Float)
    strip_offset: Mapped[float] = mapped_column(Float)  # strip x where this system starts


class Snippet(Base):
    __tablename__ = "snippets"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # also the FAISS id
    piece_id: Mapped[int] = mapped_column(ForeignKey("pieces.id", ondelete="CASCADE"), index=True)
    system: Mapped[int] = mapped_column(Integer)  # system index within the piece
    page: Mapped[int] = mapped_column(Integer)  # 1-based
    strip_x: Mapped[float] = mapped_column(Float)  # centre in the piece's unrolled strip
    x0: Mapped[float] = mapped_column(Float)  # box on the page, px at the indexing DPI
    y0: Mapped[float] = mapped_column(Float)
    x1: Mapped[float] = mapped_column(Float)
    y1: Mapped[float] = mapped_column(Float)
    model_version: Mapped[str] = mapped_column(String(40), index=True)
    vector: Mapped[bytes] = mapped_column(LargeBinary)  # 32 float32, L2-normalised


def vector_bytes(v: np.ndarray) -> bytes:
    return np.asarray(v, dtype=np.float32).tobytes()


def vectors_from(blobs: list[bytes]) -> np.ndarray:
    if not blobs:
        return np.zeros((0, EMBED_DIM), np.float32)
    return np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(blobs), -1)


def make_engine(url: str) -> Engine:
    """Engine set up for concurrent use: SQLite with WAL journal, busy timeout, foreign keys; PostgreSQL with a
    lock timeout."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_MS / 1000})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=FULL")
            cur.close()

        return engine
    if url.startswith("postgresql"):
        # a lock held longer than this is a stuck or dead client: the waiter fails (and its job reports it)
        # instead of waiting forever with its lease renewed
        return create_engine(url, pool_pre_ping=True, connect_args={"options": f"-c lock_timeout={PG_LOCK_TIMEOUT_MS}"})
    return create_engine(url, pool_pre_ping=True)


def migrate(url: str) -> None:
    """Bring the schema to the newest Alembic revision (runs before any use of the database)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url)
    cfg.attributes["configure_logger"] = False
    command.upgrade(cfg, "head")


def session_factory(engine: Engine) -> sessionmaker:
    return sessionmaker(engine, expire_on_commit=False)
