"""Alembic environment: the URL comes from the caller (indexer.store.migrate) or SHEETID settings."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from indexer.store import Base, make_engine

config = context.config
MIGRATION_LOCK_KEY = 0x5EE71D  # PostgreSQL advisory lock held while migrating
target_metadata = Base.metadata


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from indexer.settings import get_settings

    return get_settings().db_url


def run_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    engine = make_engine(_url())
    with engine.connect() as connection:
        # batch mode lets later migrations ALTER tables on SQLite (copy-and-move)
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                # replicas and workers starting together: one migrates, the others wait and find it done
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
