"""ingest jobs in the database; library generation counter

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("stage", sa.String(32), nullable=False),
        sa.Column("progress", sa.Float, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("title", sa.String(300), nullable=True),
        sa.Column("composer", sa.String(200), nullable=True),
        sa.Column("filename", sa.String(300), nullable=True),
        sa.Column("pdf", sa.LargeBinary, nullable=True),
        sa.Column("piece_id", sa.Integer, nullable=True),
        sa.Column("duplicate", sa.Boolean, nullable=False),
        sa.Column("pages_without_music", sa.String(400), nullable=False, server_default=""),
        sa.Column("error", sa.String(500), nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("worker", sa.String(120), nullable=True),
        sa.Column("lease_until", sa.Float, nullable=True),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("finished", sa.Float, nullable=True),
    )
    op.create_index("ix_jobs_status_created", "jobs", ["status", "created"])
    op.create_index("ix_jobs_sha256", "jobs", ["sha256"])
    # at most one running job per PDF: two workers never ingest the same file at once
    op.create_index("ux_jobs_running_sha256", "jobs", ["sha256"], unique=True,
                    postgresql_where=sa.text("status = 'running'"), sqlite_where=sa.text("status = 'running'"))
    state = op.create_table(
        "library_state",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("generation", sa.BigInteger, nullable=False),
    )
    op.bulk_insert(state, [{"id": 1, "generation": 0}])


def downgrade() -> None:
    op.drop_table("library_state")
    op.drop_table("jobs")
