"""deleted leads: a lead's deletion time (its status becomes ``deleted``)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 11:00:00

Deleting a lead is soft: the row stays (its leases, attempts and outcomes stay in the
statistics), its status becomes ``deleted`` and ``deleted_at`` records when. No index is
needed: the queue indexes already lead with ``status``, and the other readers filter a
campaign's leads by status.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("leads", sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("leads") as batch:
        batch.drop_column("deleted_at")
