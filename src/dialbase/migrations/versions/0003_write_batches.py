"""write_batches: the ids of committed PostgreSQL write batches

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 05:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "write_batches",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=True),
        sa.Column("kept", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_write_batches")),
    )
    op.create_index(op.f("ix_write_batches_created_at"), "write_batches", ["created_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_write_batches_created_at"), table_name="write_batches")
    op.drop_table("write_batches")
