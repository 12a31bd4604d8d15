"""The library's generation: a counter in the database that goes up whenever the searchable set changes.

API replicas keep the snippet → piece map in memory for voting. A replica that sees a generation other
than the one its map was built at reloads the map, so pieces indexed or removed by another process
become visible to it (and vanish from it) at the next query.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Integer, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from indexer.store import Base

STATE_ROW = 1  # the table holds one row


class LibraryState(Base):
    __tablename__ = "library_state"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    generation: Mapped[int] = mapped_column(BigInteger, default=0)


def bump(session: Session) -> int:
    """Increment inside the caller's transaction (which also holds the change); returns the new value.

    The row lock serialises concurrent committers, so each change gets its own generation.
    """
    session.execute(update(LibraryState).where(LibraryState.id == STATE_ROW)
                    .values(generation=LibraryState.generation + 1))  # fmt: skip
    return int(session.scalar(select(LibraryState.generation).where(LibraryState.id == STATE_ROW)) or 0)


def current(session: Session) -> int:
    return int(session.scalar(select(LibraryState.generation).where(LibraryState.id == STATE_ROW)) or 0)
