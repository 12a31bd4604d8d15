"""initial schema: pieces, pages, systems, snippets

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

status = sa.Enum("pending", "indexed", "stale", name="piece_status")


def upgrade() -> None:
    op.create_table(
        "pieces",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("composer", sa.String(200), nullable=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("pages", sa.Integer, nullable=False),
        sa.Column("status", status, nullable=False),
        sa.Column("model_version", sa.String(40), nullable=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_pieces_sha256", "pieces", ["sha256"], unique=True)
    op.create_index("ix_pieces_status", "pieces", ["status"])
    op.create_table(
        "pages",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("piece_id", sa.Integer, sa.ForeignKey("pieces.id", ondelete="CASCADE"), nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("width", sa.Integer, nullable=False),
        sa.Column("height", sa.Integer, nullable=False),
        sa.Column("image", sa.String(500), nullable=False),
    )
    op.create_index("ix_pages_piece_id", "pages", ["piece_id"])
    op.create_table(
        "systems",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("piece_id", sa.Integer, sa.ForeignKey("pieces.id", ondelete="CASCADE"), nullable=False),
        sa.Column("index", sa.Integer, nullable=False),
        sa.Column("page", sa.Integer, nullable=False),
        sa.Column("top", sa.Float, nullable=False),
        sa.Column("bottom", sa.Float, nullable=False),
        sa.Column("left", sa.Float, nullable=False),
        sa.Column("right", sa.Float, nullable=False),
        sa.Column("staff_space", sa.Float, nullable=False),
        sa.Column("strip_offset", sa.Float, nullable=False),
    )
    op.create_index("ix_systems_piece_id", "systems", ["piece_id"])
    op.create_table(
        "snippets",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("piece_id", sa.Integer, sa.ForeignKey("pieces.id", ondelete="CASCADE"), nullable=False),
        sa.Column("system", sa.Integer, nullable=False),
        sa.Column("page", sa.Integer, nullable=False),
        sa.Column("strip_x", sa.Float, nullable=False),
        sa.Column("x0", sa.Float, nullable=False),
        sa.Column("y0", sa.Float, nullable=False),
        sa.Column("x1", sa.Float, nullable=False),
        sa.Column("y1", sa.Float, nullable=False),
        sa.Column("model_version", sa.String(40), nullable=False),
        sa.Column("vector", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_snippets_piece_id", "snippets", ["piece_id"])
    op.create_index("ix_snippets_model_version", "snippets", ["model_version"])


def downgrade() -> None:
    for table in ("snippets", "systems", "pages", "pieces"):
        op.drop_table(table)
    status.drop(op.get_bind(), checkfirst=True)
